//! The `scan` handler of the Lambda adapter as a `provided.al2023` bootstrap, with the sensorData
//! steps linked in. Your own bootstrap is these lines with your step crate named instead.

use pqmigrate_sensor_steps as _;

fn main() -> Result<(), lambda_runtime::Error> {
    pqmigrate_lambda::run(pqmigrate_lambda::Handler::Scan)
}
