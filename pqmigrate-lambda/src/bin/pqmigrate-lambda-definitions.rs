//! Prints the Step Functions definitions for given function ARNs and options, or writes the
//! shipped files.
//!
//! ```text
//! pqmigrate-lambda-definitions object  --migrate-arn ARN [--retry-attempts N ...]
//! pqmigrate-lambda-definitions parent  --migrate-arn ARN --scan-arn ARN [--max-concurrency N] [--tolerated-failure-percentage P]
//! pqmigrate-lambda-definitions template
//! pqmigrate-lambda-definitions write DIR
//! ```

use std::process::ExitCode;

use pqmigrate_lambda::definitions::{Options, object_state_machine, parent_state_machine, sam_template, shipped_files};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("usage: pqmigrate-lambda-definitions object|parent|template|write DIR [options]");
        return ExitCode::from(2);
    };
    if command == "write" {
        let Some(dir) = args.get(1) else {
            eprintln!("write needs a directory");
            return ExitCode::from(2);
        };
        for (name, content) in shipped_files() {
            if let Err(e) = std::fs::write(std::path::Path::new(dir).join(name), content) {
                eprintln!("cannot write {dir}/{name}: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let mut options = Options::default();
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next() else {
            eprintln!("{flag} needs a value");
            return ExitCode::from(2);
        };
        let number = || value.parse::<u32>().ok();
        let applied = match flag.as_str() {
            "--migrate-arn" => {
                options.migrate_function = value.clone();
                true
            }
            "--scan-arn" => {
                options.scan_function = value.clone();
                true
            }
            "--max-concurrency" => number().map(|n| options.max_concurrency = n).is_some(),
            "--tolerated-failure-percentage" => number().map(|n| options.tolerated_failure_percentage = n).is_some(),
            "--retry-interval" => number().map(|n| options.retry_interval_seconds = n).is_some(),
            "--retry-attempts" => number().map(|n| options.retry_max_attempts = n).is_some(),
            "--retry-max-delay" => number().map(|n| options.retry_max_delay_seconds = n).is_some(),
            "--retry-backoff-rate" => value.parse().ok().map(|r| options.retry_backoff_rate = r).is_some(),
            _ => false,
        };
        if !applied {
            eprintln!("bad option {flag} {value}");
            return ExitCode::from(2);
        }
    }
    let definition = match command.as_str() {
        "object" => object_state_machine(&options),
        "parent" => parent_state_machine(&options),
        "template" => sam_template(&options),
        other => {
            eprintln!("unknown definition {other:?}: object, parent, template or write");
            return ExitCode::from(2);
        }
    };
    println!("{}", serde_json::to_string_pretty(&definition).expect("serializable"));
    ExitCode::SUCCESS
}
