//! The `pqmigrate` command line, as a library so that a binary with its own steps is one line:
//!
//! ```no_run
//! // use my_steps as _;   // name the step crate so its registrations are linked in
//! fn main() -> std::process::ExitCode {
//!     pqmigrate_cli::main()
//! }
//! ```
//!
//! Exit codes: 0 every object done; 1 some objects need attention (failed, unreadable, lacking a
//! step) or were left by a cancelled run; 2 refused before anything changed (usage, configuration,
//! a data set leased by another run); 3 the run itself failed part-way (the store, the journal).

mod args;
mod commands;
mod progress;
mod report;
mod signals;
mod status;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// Exit code when every object ended well.
pub const EXIT_OK: u8 = 0;
/// Exit code when some objects need attention, or a cancelled run left some.
pub const EXIT_FAILURES: u8 = 1;
/// Exit code for usage and configuration errors, and refusals before anything changed.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the run itself failed part-way: the store, the journal.
pub const EXIT_RUN_FAILED: u8 = 3;

/// Parses the process arguments, runs the command and returns the exit code. Errors are printed
/// once, with their chain of causes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    ExitCode::from(run_cli(cli))
}

/// Parses `args` (the first is the program name) and runs them; usage errors print and return
/// [`EXIT_USAGE`]. For programs that drive the CLI themselves, like the examples.
pub fn run_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run_cli(cli),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() { EXIT_USAGE } else { EXIT_OK }
        }
    }
}

/// Runs a parsed command line and returns its exit code.
pub fn run_cli(cli: Cli) -> u8 {
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pqmigrate: cannot start the async runtime: {e}");
            return EXIT_USAGE;
        }
    };
    let peak_memory = cli.peak_memory;
    let code = match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            let core = e.downcast_ref::<pqmigrate_core::Error>();
            eprintln!("pqmigrate: {}", core.map_or_else(|| format!("{e:#}"), |c| c.report()));
            exit_code(core)
        }
    };
    if peak_memory && let Some(peak) = report::peak_rss_bytes() {
        eprintln!("pqmigrate: peak memory {peak} bytes");
    }
    code
}

/// The exit code of a failed command: a core error by its kind, anything else (arguments,
/// manifests) a usage error.
fn exit_code(error: Option<&pqmigrate_core::Error>) -> u8 {
    match error.map(pqmigrate_core::Error::kind) {
        None => EXIT_USAGE,
        Some(kind) if kind.is_refusal() => EXIT_USAGE,
        Some(_) => EXIT_RUN_FAILED,
    }
}

fn init_logging(format: args::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PQM_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        args::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
        args::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error_kind() {
        let config = pqmigrate_core::Error::Config("bad URL".into());
        let store = pqmigrate_core::Error::Store {
            key: "k".into(),
            op: "list",
            source: object_store_error(),
        };
        assert_eq!(exit_code(None), EXIT_USAGE);
        assert_eq!(exit_code(Some(&config)), EXIT_USAGE);
        assert_eq!(exit_code(Some(&store)), EXIT_RUN_FAILED);
    }

    fn object_store_error() -> pqmigrate_core::store::StoreError {
        pqmigrate_core::store::StoreError::Generic {
            store: "S3",
            source: "connection refused".into(),
        }
    }
}
