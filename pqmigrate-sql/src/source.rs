//! Where migration files are read from: a local folder or a store URL, listed with what tells a
//! changed copy apart (the ETag in a store, size and modification time on disk) before any file
//! is read, so a cache can skip reading what it already has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::TryStreamExt;
use pqmigrate_core::{Store, StoreOptions};

use crate::error::SqlError;
use crate::file::file_version;

/// Files by schema id: `(schema, [(file name, text)])`.
pub(crate) type Files = Vec<(String, Vec<(String, String)>)>;

/// The migration files under one location, listed but not read.
pub(crate) struct Listing {
    /// The folder or URL, as given (without a trailing `/`).
    pub(crate) location: String,
    store: Option<Store>,
    entries: Vec<Entry>,
}

struct Entry {
    schema: String,
    name: String,
    at: At,
    stamp: String,
}

enum At {
    Path(PathBuf),
    Key(String),
}

impl Listing {
    /// `location`: a store URL (`s3://bucket/migrations`, `gs://`, `az://`, `file://`) or a plain
    /// folder path.
    pub(crate) async fn of(location: &str, options: &StoreOptions) -> Result<Self, SqlError> {
        if location.contains("://") {
            Self::of_url(location, options).await
        } else {
            Self::of_dir(location)
        }
    }

    /// `dir/<schema>/V<to>__<description>.sql`; other files and folders are passed over.
    pub(crate) fn of_dir(dir: &str) -> Result<Self, SqlError> {
        let read = |e: std::io::Error| SqlError::Read {
            location: dir.to_string(),
            message: e.to_string(),
            retryable: false,
        };
        let mut entries = Vec::new();
        for folder in std::fs::read_dir(dir).map_err(read)? {
            let folder = folder.map_err(read)?;
            if !folder.file_type().map_err(read)?.is_dir() {
                continue;
            }
            let schema = folder.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(folder.path()).map_err(read)? {
                let file = file.map_err(read)?;
                let name = file.file_name().to_string_lossy().into_owned();
                if file_version(&name).is_none() {
                    continue;
                }
                let meta = file.metadata().map_err(read)?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                entries.push(Entry {
                    schema: schema.clone(),
                    name,
                    at: At::Path(file.path()),
                    stamp: format!("{}:{}", meta.len(), modified.as_nanos()),
                });
            }
        }
        Ok(Self::sorted(dir.trim_end_matches('/'), None, entries))
    }

    async fn of_url(location: &str, options: &StoreOptions) -> Result<Self, SqlError> {
        let read = |e: pqmigrate_core::Error| SqlError::Read {
            location: location.to_string(),
            message: e.report(),
            retryable: e.is_retryable(),
        };
        let (store, prefix) = Store::open(location, options).map_err(read)?;
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix
        } else {
            format!("{prefix}/")
        };
        let listed: Vec<_> = store.list_prefix(&prefix, None).try_collect().await.map_err(read)?;
        let mut entries = Vec::new();
        for object in listed {
            let Some((schema, name)) = object.key[prefix.len()..].split_once('/') else {
                continue;
            };
            if name.contains('/') || file_version(name).is_none() {
                continue;
            }
            entries.push(Entry {
                schema: schema.to_string(),
                name: name.to_string(),
                stamp: object.e_tag.clone().unwrap_or_else(|| format!("size {}", object.size)),
                at: At::Key(object.key),
            });
        }
        Ok(Self::sorted(location.trim_end_matches('/'), Some(store), entries))
    }

    fn sorted(location: &str, store: Option<Store>, mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Self {
            location: location.to_string(),
            store,
            entries,
        }
    }

    /// What tells this set of files from another: each file's name and stamp, in order.
    pub(crate) fn stamps(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|e| (format!("{}/{}", e.schema, e.name), e.stamp.clone()))
            .collect()
    }

    /// Reads every file: `(schema, [(file name, text)])`.
    pub(crate) async fn read(&self) -> Result<Files, SqlError> {
        let Some(store) = &self.store else {
            return self.read_local();
        };
        let mut texts = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let At::Key(key) = &entry.at else {
                unreachable!("a store listing holds keys")
            };
            let (_, bytes) = store
                .get(key, Default::default())
                .await
                .map_err(|e| self.failed(key, e.report(), e.is_retryable()))?;
            texts.push(self.text(&entry.name, bytes.to_vec())?);
        }
        Ok(self.by_schema(texts))
    }

    /// As [`Listing::read`], for a listing of a local folder.
    pub(crate) fn read_local(&self) -> Result<Files, SqlError> {
        let mut texts = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let At::Path(path) = &entry.at else {
                return Err(self.failed(&entry.name, "listed in a store, read as a local file".into(), false));
            };
            let bytes = std::fs::read(path).map_err(|e| self.failed(&entry.name, e.to_string(), false))?;
            texts.push(self.text(&entry.name, bytes)?);
        }
        Ok(self.by_schema(texts))
    }

    fn text(&self, name: &str, bytes: Vec<u8>) -> Result<String, SqlError> {
        String::from_utf8(bytes).map_err(|_| self.failed(name, "not UTF-8 text".to_string(), false))
    }

    fn by_schema(&self, texts: Vec<String>) -> Files {
        let mut schemas: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (entry, text) in self.entries.iter().zip(texts) {
            schemas
                .entry(entry.schema.clone())
                .or_default()
                .push((entry.name.clone(), text));
        }
        schemas.into_iter().collect()
    }

    fn failed(&self, what: &str, message: String, retryable: bool) -> SqlError {
        SqlError::Read {
            location: self.location.clone(),
            message: format!("{what}: {message}"),
            retryable,
        }
    }
}
