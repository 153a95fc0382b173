//! Shared helpers of the core's suites: the sensor steps as tests register them, read-back of a
//! file by the `parquet` crate alone, and the independent check of the computed features.
#![allow(dead_code)]

mod interop;
mod steps;

// Each suite uses some of the helpers: a re-export one suite leaves unused is not a mistake.
#[allow(unused_imports)]
pub use pqmigrate_core::test_support::{footer_version, read_all};
#[allow(unused_imports)]
pub use pqmigrate_sensor_steps::{assert_features_match, floats};
#[allow(unused_imports)]
pub use {interop::*, steps::*};
