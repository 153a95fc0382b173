//! facade
pub use pqmigrate_core::*;
