//! Shared helpers of the integration tests, one module a concern: buckets on the servers from
//! the environment, sample data and read-back, proxies, racing writers, library runs, the built
//! binaries, step wrappers.
#![allow(dead_code)]

mod buckets;
mod cli;
mod data;
mod proxies;
mod runs;
pub mod runtime_api;
// The step wrappers are the core suites' own, shared rather than copied.
#[path = "../../pqmigrate-core/tests/support/steps.rs"]
mod steps;
mod writers;

// Each test uses some of the helpers: a re-export one test leaves unused is not a mistake.
#[allow(unused_imports)]
pub use {buckets::*, cli::*, data::*, proxies::*, runs::*, steps::*, writers::*};
