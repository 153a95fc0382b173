//! The `batch` handler as a `provided.al2023` bootstrap. It has no steps of its own: to migrate,
//! build the same two lines in a binary that names your step crate.

fn main() -> Result<(), lambda_runtime::Error> {
    pqmigrate_lambda::run(pqmigrate_lambda::Handler::Batch)
}
