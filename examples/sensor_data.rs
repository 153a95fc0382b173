//! The sensorData demo and CLI (`pqmigrate-sensor-demo`) as an example of the root package,
//! which builds it with fault injection (`PQM_INJECT_FAULTS`) for the test suite. Users run the
//! quick start's own package instead: `cargo run --release -p pqmigrate-sensor-demo`.

fn main() -> std::process::ExitCode {
    pqmigrate_core::malloc::one_arena();
    pqmigrate_sensor_demo::main()
}
