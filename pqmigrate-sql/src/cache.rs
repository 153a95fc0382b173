//! Loaded migrations kept per location for a long-lived process (a warm Lambda sandbox, a
//! service): each use lists the location, one request, and reads and plans the files again only
//! when a file was added, removed or replaced (its ETag, or its size and time on disk).

use std::collections::HashMap;
use std::sync::Mutex;

use pqmigrate_core::StoreOptions;

use crate::Migrations;
use crate::error::SqlError;
use crate::source::Listing;

/// Migrations by location, reloaded when their files change.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(dir.path().join("s")).unwrap();
/// std::fs::write(dir.path().join("s/V2__double.sql"), "SELECT *, a * 2 AS doubled FROM input").unwrap();
/// let location = dir.path().to_str().unwrap();
/// let (cache, options) = (pqmigrate_sql::Cache::default(), pqmigrate_core::StoreOptions::default());
/// futures::executor::block_on(async {
///     assert!(cache.load(location, &options).await.unwrap().reloaded);
///     assert!(!cache.load(location, &options).await.unwrap().reloaded);
/// });
/// ```
#[derive(Debug, Default)]
pub struct Cache {
    loaded: Mutex<HashMap<String, (Stamps, Migrations)>>,
}

/// Each file's name and stamp, in order.
type Stamps = Vec<(String, String)>;

/// What [`Cache::load`] gives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded {
    /// The migrations of the location.
    pub migrations: Migrations,
    /// Whether the files were read now (first use, or changed since the last).
    pub reloaded: bool,
}

impl Cache {
    /// The migrations at `location` (a folder or a store URL, as [`Migrations::open`] takes),
    /// from the cache when no file changed since the last call.
    ///
    /// A reloaded file's step stays in memory for the life of the process (objects migrated
    /// earlier in it name it); a few kilobytes a changed file.
    ///
    /// # Errors
    /// As [`Migrations::open`]; a failed load leaves the cached copy for the next call to compare.
    pub async fn load(&self, location: &str, options: &StoreOptions) -> Result<Loaded, SqlError> {
        let listing = Listing::of(location, options).await?;
        let stamps = listing.stamps();
        if let Some((cached, migrations)) = self.loaded.lock().expect("not poisoned").get(location)
            && *cached == stamps
        {
            return Ok(Loaded {
                migrations: migrations.clone(),
                reloaded: false,
            });
        }
        let migrations = Migrations::from_files(&listing.location, listing.read().await?)?;
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(location.to_string(), (stamps, migrations.clone()));
        Ok(Loaded {
            migrations,
            reloaded: true,
        })
    }
}
