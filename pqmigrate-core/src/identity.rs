//! Who and when: run ids, host names and timestamps for runs, journals and leases.

/// A new run id: the UTC start time and 64 random bits, so ids sort by start and two runs never
/// share one.
///
/// ```
/// let id = pqmigrate_core::new_run_id();
/// assert_eq!(id.len(), "20261127T235609Z-0123456789abcdef".len());
/// assert_ne!(id, pqmigrate_core::new_run_id());
/// ```
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    format!("{}-{:016x}", now.format("%Y%m%dT%H%M%SZ"), rand::random::<u64>())
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// This machine's host name, for run records and leases.
pub fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
