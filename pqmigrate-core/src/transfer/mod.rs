//! Services built on a [`Store`](crate::store::Store), above its backends: the conditional upload
//! (one request, or a multipart upload completed under the write's condition, with parts copied
//! in place), the ranged reader of a Parquet object pinned to the ETag first seen, and the probe
//! of the guarantees the write protocol relies on.

// `probe` (uncached) is the crate's own; the tests reach it through `test_support`.
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub(crate) mod probe;
mod reader;
mod upload;

pub use probe::{Guarantees, checked, guarantees};
pub use reader::ObjectReader;
pub use upload::ConditionalUpload;
