//! The stock `pqmigrate` binary. It has no steps of its own: scan, plan, status, rollback and
//! stamp work as they are; to run migrations, link a step crate into a binary of your own that
//! calls [`pqmigrate_cli::main`].

fn main() -> std::process::ExitCode {
    pqmigrate_core::malloc::one_arena();
    pqmigrate_cli::main()
}
