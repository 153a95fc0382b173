//! Step wrappers for the tests (the core's suites, and the workspace's through a path module).

use pqmigrate_core::test_support::test_step;
#[allow(unused_imports)]
pub use pqmigrate_core::test_support::{Opaque, page_indexed_metadata};

/// The sensor step 1->2 without its column declaration.
pub static OPAQUE_ADD: Opaque = Opaque(&pqmigrate_sensor_steps::AddFeatures);
/// The sensor step 2->3 without its column declaration.
pub static OPAQUE_RENAME: Opaque = Opaque(&pqmigrate_sensor_steps::RenameAndEncode);

/// A sensorData step `from -> from + 1` running `migration`, registered by a test.
pub fn sensor_step(from: u32, migration: &'static dyn pqmigrate_core::Migration) -> pqmigrate_core::StepRegistration {
    test_step(pqmigrate_sensor_steps::SCHEMA, from, migration)
}
