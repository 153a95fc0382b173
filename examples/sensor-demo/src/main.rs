//! The quick start (see the crate's documentation): `cargo run --release -p pqmigrate-sensor-demo`.

fn main() -> std::process::ExitCode {
    pqmigrate_core::malloc::one_arena();
    pqmigrate_sensor_demo::main()
}
