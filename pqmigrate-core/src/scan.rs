//! Finding a data set's objects and their versions: listing (or a manifest), filtering,
//! sharding, and version look-ups with bounded concurrency, as a stream.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::migrate::MigrateOptions;
use crate::rewrite::Footer;
use crate::store::{INTERNAL_PREFIX, Store};
use crate::transfer::ObjectReader;
use crate::version_store::VersionStore;

/// Which objects make up the data set (the scan event's `prefixes`, `type` and `filter`).
///
/// ```
/// let spec = pqmigrate_core::scan::ScanSpec::default()
///     .prefixes(["parquet/".to_string()])
///     .suffix(".parquet")
///     .filter("sensorData_");
/// assert!(spec.accepts("parquet/sensorData_1.parquet"));
/// assert!(!spec.accepts("parquet/sensorData_1.csv") && !spec.accepts("parquet/other_1.parquet"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanSpec {
    /// Key prefixes (raw strings, not directories: `day=0` matches `day=01/...`). Empty or `[""]`
    /// means the whole store.
    pub prefixes: Vec<String>,
    /// Required key ending, e.g. `.parq.snappy` (the scan event's `type`).
    pub suffix: String,
    /// Required substring of the key's base name, e.g. `sensorData_` (the scan event's `filter`).
    pub filter: String,
    /// Only this shard of the keys.
    pub shard: Option<Shard>,
    /// Keys per listing request (the server's default when `None`).
    pub page_size: Option<usize>,
    /// Version look-ups in flight at once.
    pub concurrency: usize,
}

crate::setters::setters!(ScanSpec {
    set suffix: String,
    set filter: String,
    val shard: Option<Shard>,
    val page_size: Option<usize>,
    val concurrency: usize,
});

impl ScanSpec {
    /// Sets `prefixes`.
    #[must_use]
    pub fn prefixes(mut self, prefixes: impl IntoIterator<Item = String>) -> Self {
        self.prefixes = prefixes.into_iter().collect();
        self
    }
}

/// Shard `index` of `count` (0-based), assigned by a hash of the key, so `n` machines each
/// running `--shard i/n` cover every key exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `i/n`, or `auto` for the shard the batch engine running the process assigned
    /// (see [`Shard::from_env`]).
    ///
    /// ```
    /// let s: pqmigrate_core::scan::Shard = "2/8".parse().unwrap();
    /// assert_eq!((s.index, s.count), (2, 8));
    /// assert!("8/8".parse::<pqmigrate_core::scan::Shard>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        if s.trim() == "auto" {
            return Self::from_env(|name| std::env::var(name).ok());
        }
        let bad = || Error::Config(format!("shard {s:?}: expected i/n with 0 <= i < n"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// Where batch engines put a task's index, and (where they do) the number of tasks.
const SHARD_INDEX_VARIABLES: [&str; 4] = [
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "CLOUD_RUN_TASK_INDEX",
    "PQM_SHARD_INDEX",
];
const SHARD_COUNT_VARIABLES: [&str; 2] = ["CLOUD_RUN_TASK_COUNT", "PQM_SHARD_COUNT"];

impl Shard {
    /// The shard a batch engine assigned this process, from `variable` (the environment): the
    /// index from Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`), AWS Batch array jobs
    /// (`AWS_BATCH_JOB_ARRAY_INDEX`), Cloud Run Jobs (`CLOUD_RUN_TASK_INDEX`) or
    /// `PQM_SHARD_INDEX`; the count from `CLOUD_RUN_TASK_COUNT` or, for the engines that do not
    /// expose one, `PQM_SHARD_COUNT` (set it to the job's completions or array size).
    ///
    /// ```
    /// use pqmigrate_core::scan::Shard;
    /// let env = |name: &str| match name {
    ///     "AWS_BATCH_JOB_ARRAY_INDEX" => Some("3".to_string()),
    ///     "PQM_SHARD_COUNT" => Some("4".to_string()),
    ///     _ => None,
    /// };
    /// assert_eq!(Shard::from_env(env).unwrap(), Shard { index: 3, count: 4 });
    /// assert!(Shard::from_env(|_| None).unwrap_err().to_string().contains("JOB_COMPLETION_INDEX"));
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variables looked for when no index or count is set, or when
    /// they do not make a shard.
    pub fn from_env(variable: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let first = |names: &[&'static str]| names.iter().find_map(|&n| variable(n).map(|v| (n, v)));
        let (index_name, index) = first(&SHARD_INDEX_VARIABLES).ok_or_else(|| {
            Error::Config(format!(
                "--shard auto: no shard index in the environment (looked for {})",
                SHARD_INDEX_VARIABLES.join(", ")
            ))
        })?;
        let (count_name, count) = first(&SHARD_COUNT_VARIABLES).ok_or_else(|| {
            Error::Config(format!(
                "--shard auto: {index_name} is set but no shard count is (set {}; Kubernetes and AWS Batch do not expose one, so set PQM_SHARD_COUNT to the job's completions or array size)",
                SHARD_COUNT_VARIABLES.join(" or ")
            ))
        })?;
        format!("{}/{}", index.trim(), count.trim())
            .parse()
            .map_err(|e| Error::Config(format!("--shard auto: {index_name}={index}, {count_name}={count}: {e}")))
    }

    /// Whether `key` belongs to this shard (SHA-256 of the key, first 8 bytes, modulo `count`).
    pub fn contains(&self, key: &str) -> bool {
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(self.count)) as u32 == self.index
    }
}

/// One object found by a scan.
#[derive(Debug)]
pub struct ScannedObject {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag at listing time.
    pub e_tag: Option<String>,
    /// Its version, or why it could not be read.
    pub version: Result<u32>,
}

/// A key to scan, from a listing or a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Object key.
    pub key: String,
    /// Size, when the listing gave it.
    pub size: Option<u64>,
    /// ETag, when the listing gave it.
    pub e_tag: Option<String>,
}

impl ScanSpec {
    /// Whether a key passes the suffix, filter, internal-prefix and shard rules (not the
    /// prefixes, which the listing applies).
    pub fn accepts(&self, key: &str) -> bool {
        if key.starts_with(INTERNAL_PREFIX) || !key.ends_with(&self.suffix) {
            return false;
        }
        let base = key.rsplit('/').next().unwrap_or(key);
        if !base.contains(&self.filter) {
            return false;
        }
        self.shard.is_none_or(|s| s.contains(key))
    }

    /// The prefixes to list, with any prefix covered by another one dropped (so no key is
    /// listed twice).
    pub fn effective_prefixes(&self) -> Vec<String> {
        let mut prefixes: Vec<String> = if self.prefixes.is_empty() {
            vec![String::new()]
        } else {
            self.prefixes.clone()
        };
        prefixes.sort();
        prefixes.dedup();
        let mut kept: Vec<String> = Vec::new();
        for p in prefixes {
            if !kept.iter().any(|k| p.starts_with(k.as_str())) {
                kept.push(p);
            }
        }
        kept
    }
}

/// Lists the candidates under `spec`'s prefixes, following every page, filtered by
/// [`ScanSpec::accepts`]. A stream: nothing is held beyond the current page.
pub fn list_candidates(store: &Store, spec: &ScanSpec) -> BoxStream<'static, Result<Candidate>> {
    let store = store.clone();
    let spec = Arc::new(spec.clone());
    stream::iter(spec.effective_prefixes())
        .flat_map(move |prefix| {
            let spec = spec.clone();
            store.list_prefix(&prefix, spec.page_size).filter_map(move |listed| {
                let candidate = match listed {
                    Ok(l) if spec.accepts(&l.key) => Some(Ok(Candidate {
                        key: l.key,
                        size: Some(l.size),
                        e_tag: l.e_tag,
                    })),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(candidate)
            })
        })
        .boxed()
}

/// Where a data set's keys come from.
#[derive(Debug, Clone, Default)]
pub enum Candidates {
    /// A listing of the spec's prefixes.
    #[default]
    Listing,
    /// Keys read from a manifest (see [`manifest_candidates`]).
    Keys(Arc<Vec<Candidate>>),
    /// A manifest file on this machine, read a line at a time as the run goes (so a manifest
    /// of millions of keys takes no memory); rows for another bucket than `bucket` are skipped.
    ManifestFile {
        /// The manifest's path.
        path: std::path::PathBuf,
        /// The data set's bucket, when it has one.
        bucket: Option<String>,
    },
}

/// The candidates of a data set: the listing of `spec`'s prefixes, or the given keys.
pub fn candidates(store: &Store, spec: &ScanSpec, source: &Candidates) -> BoxStream<'static, Result<Candidate>> {
    match source {
        Candidates::Listing => list_candidates(store, spec),
        Candidates::Keys(keys) => {
            let keys = keys.clone();
            stream::iter((0..keys.len()).map(move |i| Ok(keys[i].clone()))).boxed()
        }
        Candidates::ManifestFile { path, bucket } => manifest_file(path.clone(), bucket.clone(), spec.clone()),
    }
}

/// The candidates of a manifest file, a line at a time.
fn manifest_file(
    path: std::path::PathBuf,
    bucket: Option<String>,
    spec: ScanSpec,
) -> BoxStream<'static, Result<Candidate>> {
    use tokio::io::AsyncBufReadExt;
    let cannot = |path: &std::path::Path, e: std::io::Error| Error::Config(format!("manifest {}: {e}", path.display()));
    let opened = {
        let path = path.clone();
        async move {
            tokio::fs::File::open(&path)
                .await
                .map(|file| tokio::io::BufReader::new(file).lines())
                .map_err(|e| cannot(&path, e))
        }
    };
    stream::once(opened)
        .map(move |lines| {
            let (path, bucket, spec) = (path.clone(), bucket.clone(), spec.clone());
            match lines {
                Err(e) => stream::iter(vec![Err(e)]).boxed(),
                Ok(lines) => stream::unfold((lines, 0usize), move |(mut lines, n)| {
                    let (path, bucket, spec) = (path.clone(), bucket.clone(), spec.clone());
                    async move {
                        let mut n = n;
                        loop {
                            n += 1;
                            match lines.next_line().await {
                                Ok(None) => return None,
                                Err(e) => return Some((Err(cannot(&path, e)), (lines, usize::MAX))),
                                Ok(Some(line)) => match manifest_line(n, &line, bucket.as_deref(), &spec) {
                                    Ok(None) => continue,
                                    Ok(Some(candidate)) => return Some((Ok(candidate), (lines, n))),
                                    Err(e) => return Some((Err(e), (lines, n))),
                                },
                            }
                        }
                    }
                })
                .boxed(),
            }
        })
        .flatten()
        .boxed()
}

/// Reads candidates from a manifest: CSV lines `bucket,key[,version_id,...]` as S3 Inventory and
/// S3 Batch Operations write them (keys URL-encoded, fields optionally quoted), or one plain key
/// a line. Rows for another bucket than `bucket` are skipped; the spec's filters apply.
///
/// # Errors
/// [`Error::Config`] for a line that cannot be read.
pub fn manifest_candidates(text: &str, bucket: Option<&str>, spec: &ScanSpec) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        out.extend(manifest_line(n + 1, line, bucket, spec)?);
    }
    Ok(out)
}

/// The candidate of manifest line `n`, if it names one the spec accepts.
fn manifest_line(n: usize, line: &str, bucket: Option<&str>, spec: &ScanSpec) -> Result<Option<Candidate>> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let fields = split_csv(line);
    let key = match fields.as_slice() {
        [key] => key.clone(),
        [b, key, ..] => {
            if bucket.is_some_and(|bucket| bucket != b) {
                return Ok(None);
            }
            crate::store::form_decode(key)
                .ok_or_else(|| Error::Config(format!("manifest line {n}: bad key {key:?}")))?
        }
        [] => return Ok(None),
    };
    if spec.prefixes.iter().all(|p| !key.starts_with(p.as_str())) && !spec.prefixes.is_empty() {
        return Ok(None);
    }
    Ok(spec.accepts(&key).then_some(Candidate {
        key,
        size: None,
        e_tag: None,
    }))
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The manifest line of `key`: `bucket,key` with the key form-URL-encoded as S3 Inventory
/// writes it, so any key survives (commas, quotes, spaces, newlines); [`manifest_candidates`]
/// reads it back.
///
/// ```
/// use pqmigrate_core::scan::{ScanSpec, manifest_candidates, manifest_line_of};
/// let line = manifest_line_of(Some("b"), "d/a b,c+\n.parquet");
/// assert_eq!(line, "b,d/a+b%2Cc%2B%0A.parquet");
/// let read = manifest_candidates(&line, Some("b"), &ScanSpec::default()).unwrap();
/// assert_eq!(read[0].key, "d/a b,c+\n.parquet");
/// ```
pub fn manifest_line_of(bucket: Option<&str>, key: &str) -> String {
    const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/')
        .remove(b' ');
    let encoded = percent_encoding::utf8_percent_encode(key, FORM)
        .to_string()
        .replace(' ', "+");
    format!("{},{encoded}", bucket.unwrap_or_default())
}

/// Looks up the version of each candidate with at most `spec.concurrency` look-ups in flight:
/// the version tag where the store has tags (one small request), else the footer (one ranged
/// read).
pub fn scan(
    store: &Store,
    candidates: BoxStream<'static, Result<Candidate>>,
    options: &MigrateOptions,
    concurrency: usize,
) -> BoxStream<'static, Result<ScannedObject>> {
    let store = store.clone();
    let versions = Arc::new(VersionStore::new(&store, &options.version_key, options.version_source));
    candidates
        .map(move |candidate| {
            let store = store.clone();
            let versions = versions.clone();
            async move {
                let candidate = candidate?;
                Ok(lookup(&store, candidate, &versions).await)
            }
        })
        .buffered(concurrency.max(1))
        .boxed()
}

async fn lookup(store: &Store, candidate: Candidate, versions: &VersionStore) -> ScannedObject {
    let key = candidate.key;
    let mut seen = candidate.size.map(|size| (size, candidate.e_tag));
    // An object replaced between its listing (or head) and its footer read is looked up again,
    // a few times, instead of being taken for an unreadable file.
    let mut looks = 0;
    loop {
        looks += 1;
        let meta = match seen.take() {
            Some(meta) => Ok(meta),
            None => store.head(&key).await.map(|h| (h.size, h.e_tag)),
        };
        let (size, e_tag) = match meta {
            Ok(meta) => meta,
            Err(e) => {
                return ScannedObject {
                    key,
                    size: 0,
                    e_tag: None,
                    version: Err(e),
                };
            }
        };
        let version = versions.quick(&key, size, e_tag.clone()).await;
        if matches!(&version, Err(Error::Conflict { .. })) && looks < LOOKUPS {
            continue;
        }
        return ScannedObject {
            version,
            key,
            size,
            e_tag,
        };
    }
}

/// Times an object is looked up when it keeps changing under the footer read.
const LOOKUPS: u32 = 5;

/// Reads and parses only the footer of a Parquet object: one ranged read of its last 64 KiB,
/// and a second only when the footer is larger.
///
/// # Errors
/// [`Error::NotParquet`] for an object that is not Parquet, [`Error::Store`] for the reads.
pub async fn read_footer(store: &Store, key: &str, size: u64) -> Result<Footer> {
    ObjectReader::new(store, key, size, None)?.footer(false).await
}

#[cfg(test)]
mod tests;
