//! Command-line arguments, mapped into core types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pqmigrate_core::scan::{ScanSpec, Shard};
use pqmigrate_core::store::RetryPolicy;
use pqmigrate_core::{RunOptions, VersionSource, schema_of_version_key};

/// Controlled, versioned schema migration of Parquet data sets in object storage.
///
/// Exit codes: 0 everything done, 1 some objects failed or lack a step, 2 refused before
/// anything changed (usage, configuration, an unreachable store, a data set another writer
/// holds), 3 the run failed part-way.
#[derive(Debug, Parser)]
#[command(name = "pqmigrate", version, about, long_about = None)]
pub struct Cli {
    /// S3 endpoint for S3-compatible servers (MinIO, SeaweedFS); AWS when unset.
    #[arg(long, global = true, env = "PQM_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// GCS endpoint for an emulator (fake-gcs-server), addressed without credentials; Google
    /// when unset.
    #[arg(long, global = true, env = "PQM_GCS_ENDPOINT")]
    pub gcs_endpoint: Option<String>,
    /// Azure Blob endpoint with the account (Azurite: `http://127.0.0.1:10000/devstoreaccount1`);
    /// the account's own when unset.
    #[arg(long, global = true, env = "PQM_AZURE_ENDPOINT")]
    pub azure_endpoint: Option<String>,
    /// S3 region (else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where run journals live in the store.
    #[arg(long, global = true, default_value = pqmigrate_core::journal::DEFAULT_JOURNAL_PREFIX)]
    pub journal_prefix: String,
    /// Migration files to run beside the compiled steps: a folder, or a store URL (`s3://`,
    /// `gs://`, `az://`) holding `<schema>/V<to>__<description>.sql`.
    #[arg(long, global = true, env = "PQM_MIGRATIONS", value_name = "DIR_OR_URL")]
    pub migrations: Option<String>,
    /// Log lines on stderr as text, or as one JSON object a line for a cluster's log pipeline
    /// (level from PQM_LOG, `warn` by default).
    #[arg(long, global = true, env = "PQM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Print the process's peak memory (resident set) to stderr at the end.
    #[arg(long, global = true)]
    pub peak_memory: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered migration steps.
    Steps,
    /// List the data set's objects and their versions.
    Scan(DatasetArgs),
    /// Show what a run would do, with totals; writes nothing.
    Plan(PlanArgs),
    /// Migrate every object that needs it.
    Run(RunArgs),
    /// Show past runs, or one run's records.
    Status(StatusArgs),
    /// Restore every object a run migrated to its previous version (needs bucket versioning on S3; local disk keeps versions).
    Rollback(RollbackArgs),
    /// Record a version on objects without rewriting them (baselining).
    Stamp(StampArgs),
    /// Read every object's footer and report each one whose version tag and footer disagree
    /// (plan and run trust the tag where there is one); writes nothing.
    Validate(DatasetArgs),
}

/// Which objects, and which schema.
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// The store: s3://bucket[/prefix], file:///dir or memory://. A path in the URL is the prefix
    /// when no --prefix is given.
    pub store: String,
    /// Schema id (`sensorData`) or the version key (`schema:sensorData:version`).
    #[arg(long, value_parser = schema_id)]
    pub schema: String,
    /// Key prefix to scan (repeatable); the whole store when none.
    #[arg(long = "prefix")]
    pub prefixes: Vec<String>,
    /// Key ending objects must have (the scan event's `type`), e.g. `.parq.snappy`.
    #[arg(long, alias = "type", default_value = "")]
    pub suffix: String,
    /// Substring the key's base name must contain, e.g. `sensorData_`.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// Only shard i of n (`--shard 0/4`), by a hash of the key; `--shard auto` takes it from the
    /// batch engine (Kubernetes Indexed Jobs, AWS Batch array jobs, Cloud Run Jobs).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Read keys from a manifest (CSV `bucket,key[,version]` as S3 Inventory writes, or a key a
    /// line) instead of listing.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Keys per listing request.
    #[arg(long, value_parser = at_least_one)]
    pub page_size: Option<usize>,
    /// Version look-ups in flight during the scan.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    pub scan_concurrency: usize,
    /// Tag and footer key of the version (default `schema:<id>:version`).
    #[arg(long)]
    pub version_key: Option<String>,
    /// Where versions are read: tags and footer together where the store has tags (auto), tags
    /// only, or the footer only.
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub version_source: SourceArg,
}

/// `--version-source` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    /// Tags and footer.
    Auto,
    /// Tags only.
    Tags,
    /// Footer only.
    Footer,
}

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The data set.
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Target version.
    #[arg(long, value_parser = version)]
    pub to: u32,
    /// Also list every object with its class.
    #[arg(long)]
    pub list: bool,
    /// Write the objects that need migration as N manifests balanced by bytes to rewrite, each
    /// for one worker's `run --manifest` (with --out).
    #[arg(long, requires = "out", value_parser = at_least_one)]
    pub split: Option<usize>,
    /// Folder the --split manifests go to (`manifest-000-of-004.csv`...).
    #[arg(long, requires = "split")]
    pub out: Option<std::path::PathBuf>,
    /// Read the footer of each object to migrate and check each distinct schema against its
    /// steps (always done with --migrations): a step that cannot take a schema is named now,
    /// not per object during the run.
    #[arg(long)]
    pub check_schemas: bool,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The data set.
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Target version.
    #[arg(long, value_parser = version)]
    pub to: u32,
    /// Objects migrated at once.
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    pub concurrency: usize,
    /// Attempts per object, the first included (retryable failures only).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds (full jitter applies).
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Growth of the delay per retry (1 or more).
    #[arg(long, default_value_t = 2.0, value_parser = backoff_rate)]
    pub backoff_rate: f64,
    /// Largest delay between retries, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    pub max_delay_ms: u64,
    /// Limit of one attempt on one object, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
    /// Apply at most this many steps per object in this run.
    #[arg(long, value_parser = at_least_one)]
    pub max_steps: Option<usize>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Go on although a migration file has changed since earlier runs applied it (they are
    /// named); the objects it migrated keep what the earlier text wrote.
    #[arg(long)]
    pub accept_changed_migrations: bool,
    /// Requests per second to the store at most (beside --concurrency); unlimited when unset.
    #[arg(long, value_parser = positive_rate)]
    pub max_requests_per_second: Option<f64>,
    /// Seconds the run's lease lives without renewal; a crashed run blocks the data set this
    /// long at most.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_ttl_secs: u64,
    /// Delete the data set's lease first, whoever holds it (for an operator who knows the
    /// holder is gone).
    #[arg(long)]
    pub break_lease: bool,
    /// Copy untouched column chunks without checking their pages first (headers, CRCs where
    /// present, decompression): faster, but damage in a column no step reads goes unnoticed.
    #[arg(long)]
    pub trust_copied_columns: bool,
    /// Rewrite files even where the data set lies at or under a Delta Lake, Iceberg or Hudi
    /// table (refused by default: the table records each file's size, so a file rewritten in
    /// place breaks the table for its readers).
    #[arg(long)]
    pub allow_table_files: bool,
    /// Stream every file whole instead of having the store copy the unchanged bytes in place
    /// (S3 `UploadPartCopy`, `copy_file_range` on local disk).
    #[arg(long)]
    pub no_copy_in_place: bool,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The store.
    pub store: String,
    /// A run id: its summary and failures; all runs when omitted.
    pub run_id: Option<String>,
    /// With all runs: also one view of each data set run as shards (`--shard i/n` or
    /// `--shard auto`), from the latest run of every shard.
    #[arg(long, conflicts_with = "run_id")]
    pub merge: bool,
}

/// `rollback` arguments.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The store.
    pub store: String,
    /// The run to undo.
    pub run_id: String,
    /// Delete the data set's lease first, whoever holds it.
    #[arg(long)]
    pub break_lease: bool,
    /// Objects restored at once.
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    pub concurrency: usize,
}

/// `stamp` arguments.
#[derive(Debug, Args)]
pub struct StampArgs {
    /// The data set.
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The version to record.
    #[arg(long, value_parser = version)]
    pub version: u32,
    /// Change a different version tag that is already there.
    #[arg(long)]
    pub force: bool,
    /// Delete whatever lease holds the data set first (when its holder is known to be gone).
    #[arg(long)]
    pub break_lease: bool,
    /// Stamp even where the data set lies at or under a Delta Lake, Iceberg or Hudi table.
    #[arg(long)]
    pub allow_table_files: bool,
}

/// A count of 1 or more (objects at once, keys a page, manifests, steps).
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("0 is not allowed: the count must be 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: the count must be a whole number, 1 or more")),
    }
}

/// A schema version: 1 or more.
fn version(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(0) => Err("versions start at 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: a version is a whole number, 1 or more")),
    }
}

/// Requests per second: a finite number above 0.
fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err("the rate must be a number above 0 (leave the flag out for no limit)".into()),
        Err(e) => Err(format!("{e}: the rate must be a number above 0")),
    }
}

/// The growth of the retry delay: a finite number, 1 or more.
fn backoff_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 1.0 => Ok(rate),
        Ok(_) => Err("the backoff rate must be a number, 1 or more".into()),
        Err(e) => Err(format!("{e}: the backoff rate must be a number, 1 or more")),
    }
}

/// A schema id or version key that names a schema.
fn schema_id(value: &str) -> Result<String, String> {
    let id = schema_of_version_key(value).unwrap_or(value);
    if id.trim().is_empty() {
        return Err("the schema id is empty; give the data set's schema id, such as sensorData".into());
    }
    Ok(value.to_string())
}

impl DatasetArgs {
    /// The schema id, from either spelling.
    pub fn schema_id(&self) -> &str {
        schema_of_version_key(&self.schema).unwrap_or(&self.schema)
    }

    /// The scan spec; `url_prefix` is the path of the store URL.
    pub fn scan_spec(&self, url_prefix: &str) -> ScanSpec {
        let prefixes = if self.prefixes.is_empty() && !url_prefix.is_empty() {
            vec![url_prefix.to_string()]
        } else {
            self.prefixes.clone()
        };
        ScanSpec::default()
            .prefixes(prefixes)
            .suffix(self.suffix.as_str())
            .filter(self.filter.as_str())
            .shard(self.shard)
            .page_size(self.page_size)
            .concurrency(self.scan_concurrency)
    }

    /// Migration options for `target`.
    pub fn migrate_options(&self, target: u32) -> pqmigrate_core::MigrateOptions {
        let mut options = pqmigrate_core::MigrateOptions::new(self.schema_id(), target);
        if let Some(key) = &self.version_key {
            options.version_key = key.clone();
        } else if schema_of_version_key(&self.schema).is_some() {
            options.version_key = self.schema.clone();
        }
        options.version_source = match self.version_source {
            SourceArg::Auto => VersionSource::Auto,
            SourceArg::Tags => VersionSource::Tags,
            SourceArg::Footer => VersionSource::Footer,
        };
        options
    }
}

impl RunArgs {
    /// Executor options.
    pub fn run_options(&self) -> RunOptions {
        RunOptions::default()
            .concurrency(self.concurrency)
            .retry(RetryPolicy {
                interval: Duration::from_millis(self.interval_ms),
                max_attempts: self.max_attempts,
                backoff_rate: self.backoff_rate,
                max_delay: Duration::from_millis(self.max_delay_ms),
            })
            .attempt_timeout(Some(Duration::from_secs(self.timeout_secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_event_style_arguments_map_to_core_types() {
        let cli = Cli::try_parse_from([
            "pqmigrate",
            "run",
            "s3://bucket/parquet/year=2019/month=3/",
            "--schema",
            "schema:sensorData:version",
            "--type",
            ".parq.snappy",
            "--filter",
            "sensorData_",
            "--to",
            "3",
            "--shard",
            "1/4",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else { panic!("run") };
        assert_eq!(run.dataset.schema_id(), "sensorData");
        let spec = run.dataset.scan_spec("parquet/year=2019/month=3/");
        assert_eq!(spec.prefixes, vec!["parquet/year=2019/month=3/"]);
        assert_eq!(spec.suffix, ".parq.snappy");
        assert_eq!(spec.shard, Some(Shard { index: 1, count: 4 }));
        let options = run.dataset.migrate_options(run.to);
        assert_eq!(
            (options.version_key.as_str(), options.target),
            ("schema:sensorData:version", 3)
        );
        assert_eq!(run.run_options().retry.max_attempts, 6);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let e = Cli::try_parse_from([
            "pqmigrate",
            "run",
            "s3://b",
            "--schema",
            "s",
            "--to",
            "3",
            "--shard",
            "4/4",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("shard"), "{e}");
    }
}
