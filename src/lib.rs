//! pqmigrate: controlled, versioned schema migration of Parquet data sets in object storage.
//!
//! This package re-exports [`pqmigrate_core`] and owns the examples and benches; the command
//! line is `pqmigrate-cli` and the AWS Lambda adapter `pqmigrate-lambda`.
pub use pqmigrate_core::*;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
