//! The stock bootstrap: no step compiled in. It runs the handler the function's `Handler`
//! setting names (`migrate`, `scan` or `batch`) with the migration files at the location an
//! event names (`migrations`) or the function's `PQM_MIGRATIONS` (`s3://bucket/_pqmigrate/migrations`).
//! Built once; a new migration is a file upload and an execution.

fn main() -> Result<(), lambda_runtime::Error> {
    let handler = pqmigrate_lambda::Handler::from_env()?;
    pqmigrate_lambda::run(handler)
}
