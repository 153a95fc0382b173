//! An IoT case as a step crate: the `sensorData` schema's steps and a generator
//! of its data set.
//!
//! - `1 -> 2` appends `magnitude` = sqrt(x² + y²), `angle` = atan2(y, x), `x_norm` = x / magnitude
//!   (null when magnitude is 0 or null) and `quadrant` (int8, 1..4); any null input gives null.
//! - `2 -> 3` renames `sensor_type` to `sensor_kind` and stores `device_id` dictionary-encoded.
//!
//! A binary that runs these steps must name this crate (`use pqmigrate_sensor_steps as _;`), or the
//! linker drops the registrations.

mod check;
mod generate;
mod steps;

pub use check::{assert_features_match, floats};
pub use generate::{DataSpec, generate_batch, generate_file, write_file};
pub use steps::{AddFeatures, RenameAndEncode, SCHEMA};

/// Number of steps this crate registers (binaries assert it to catch dropped registrations).
pub const STEP_COUNT: usize = 2;
