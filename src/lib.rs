//! pqmigrate: controlled, versioned schema migration of Parquet data sets in object storage.
//!
//! This package re-exports [`pqmigrate_core`] and owns the examples and benches; the command
//! line is `pqmigrate-cli` and the AWS Lambda adapter `pqmigrate-lambda`.
pub use pqmigrate_core::*;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust examples of `docs/`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/lambda.md")]
#[doc = include_str!("../docs/guarantees.md")]
#[doc = include_str!("../docs/stores.md")]
#[doc = include_str!("../docs/cluster.md")]
#[doc = include_str!("../docs/performance.md")]
pub struct DocsDoctests;
