//! The `pqmigrate` command line, as a library so that a binary with its own steps is one line:
//!
//! ```no_run
//! // use my_steps as _;   // name the step crate so its registrations are linked in
//! fn main() -> std::process::ExitCode {
//!     pqmigrate_cli::main()
//! }
//! ```
//!
//! Exit codes: 0 all done, 1 some objects failed or lack a step, 2 usage or configuration error.

mod args;
mod commands;
mod progress;
mod report;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// Exit code when every object ended well.
pub const EXIT_OK: u8 = 0;
/// Exit code when some objects failed or lack a step.
pub const EXIT_FAILURES: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

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
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pqmigrate: cannot start the async runtime: {e}");
            return EXIT_USAGE;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pqmigrate: {e:#}");
            EXIT_USAGE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PQM_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
