//! One function per command, each mapping arguments to a core use case and reporting its result.

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::stream::StreamExt;
use pqmigrate_core::plan::{PlanTotals, SchemaChecks, plan};
use pqmigrate_core::rollback::{RollbackOptions, rollback_run};
use pqmigrate_core::scan::{Candidates, candidates, scan};
use pqmigrate_core::stamp::{StampOptions, stamp_dataset};
use pqmigrate_core::validate::validate_versions;
use pqmigrate_core::{Migrator, Registry, Store, StoreOptions};

use crate::args::{Cli, Command, DatasetArgs, PlanArgs, RollbackArgs, RunArgs, StampArgs, StatusArgs};
use crate::progress::Progress;
use crate::{EXIT_FAILURES, EXIT_OK, EXIT_RUN_FAILED};
use crate::{report, status};

pub(crate) async fn dispatch(cli: Cli) -> Result<u8> {
    let mut options = StoreOptions::default();
    options.endpoint = cli.endpoint.clone();
    options.gcs_endpoint = cli.gcs_endpoint.clone();
    options.azure_endpoint = cli.azure_endpoint.clone();
    options.region = cli.region.clone();
    match &cli.command {
        Command::Steps => steps(&cli, &options).await,
        Command::Scan(args) => scan_command(&cli, &options, args).await,
        Command::Plan(args) => plan_command(&cli, &options, args).await,
        Command::Run(args) => run(&cli, &options, args).await,
        Command::Status(args) => status(&cli, &options, args).await,
        Command::Rollback(args) => rollback(&cli, &options, args).await,
        Command::Stamp(args) => stamp_command(&cli, &options, args).await,
        Command::Validate(args) => validate(&cli, &options, args).await,
    }
}

/// The steps compiled into this binary, and the migration files of `--migrations`.
async fn registry(cli: &Cli, options: &StoreOptions) -> Result<Registry> {
    let Some(location) = &cli.migrations else {
        return Ok(Registry::from_inventory()?);
    };
    #[cfg(feature = "sql")]
    {
        let migrations = pqmigrate_sql::Migrations::open(location, options).await?;
        Ok(migrations.registry(
            pqmigrate_core::inventory::iter::<pqmigrate_core::StepRegistration>
                .into_iter()
                .copied(),
        )?)
    }
    #[cfg(not(feature = "sql"))]
    {
        let _ = options;
        anyhow::bail!("--migrations {location}: this binary was built without SQL migrations (the `sql` feature)")
    }
}

fn open(url: &str, options: &StoreOptions) -> Result<(Store, String)> {
    let (store, prefix) = Store::open(url, options)?;
    Ok((with_injected_faults(store)?, prefix))
}

/// Opens a store a command will write to, and checks it can be reached and trusted before
/// anything else: wrong credentials, an unreachable endpoint or a missing bucket are refusals
/// (nothing was written), not failures part-way.
async fn open_for_writing(url: &str, options: &StoreOptions) -> Result<(Store, String)> {
    let (store, prefix) = open(url, options)?;
    if let Err(e) = pqmigrate_core::transfer::guarantees(&store).await {
        return Err(pqmigrate_core::Error::Config(format!(
            "{url}: the store could not be reached or checked, so nothing was done: {}",
            e.report()
        ))
        .into());
    }
    Ok((store, prefix))
}

/// Wraps the store in the fault injector when `PQM_INJECT_FAULTS` asks for it (chaos testing):
/// `throttle=0.2,timeout=0.01,reset=0.01,upload=0.01,lost=0.1,latency_ms=5,seed=7`.
#[cfg(feature = "fault-injection")]
fn with_injected_faults(store: Store) -> Result<Store> {
    let Ok(spec) = std::env::var("PQM_INJECT_FAULTS") else {
        return Ok(store);
    };
    let config = pqmigrate_core::store::fault::FaultConfig::parse(&spec)?;
    tracing::warn!("injecting faults into every store request: {spec}");
    Ok(store.with_faults(config).0)
}

#[cfg(not(feature = "fault-injection"))]
fn with_injected_faults(store: Store) -> Result<Store> {
    if std::env::var_os("PQM_INJECT_FAULTS").is_some() {
        anyhow::bail!("PQM_INJECT_FAULTS is set, but this binary was built without the fault-injection feature");
    }
    Ok(store)
}

async fn steps(cli: &Cli, options: &StoreOptions) -> Result<u8> {
    let registry = registry(cli, options).await?;
    if cli.json {
        let steps: Vec<_> = registry
            .steps()
            .map(|s| {
                serde_json::json!({
                    "schema": s.schema, "from": s.from, "to": s.to, "name": s.name,
                    "revision": s.revision, "crate": s.crate_id, "fingerprint": s.fingerprint(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&steps)?);
    } else if registry.is_empty() {
        println!("no steps registered in this binary (link a step crate into a binary that calls pqmigrate_cli::main)");
    } else {
        for s in registry.steps() {
            println!(
                "{:<24} {:>4} -> {:<4} {}  {}",
                s.schema,
                s.from,
                s.to,
                s.name,
                s.fingerprint()
            );
        }
    }
    Ok(EXIT_OK)
}

/// Where the data set's keys come from: the manifest's keys, or a listing.
fn source(store: &Store, args: &DatasetArgs) -> Result<Candidates> {
    let Some(path) = &args.manifest else {
        return Ok(Candidates::Listing);
    };
    // Opened once here, so a missing manifest is a usage error; it is read as the run goes.
    std::fs::File::open(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
    Ok(Candidates::ManifestFile {
        path: path.clone(),
        bucket: store.s3_bucket().map(str::to_string),
    })
}

async fn scan_command(cli: &Cli, options: &StoreOptions, args: &DatasetArgs) -> Result<u8> {
    let (store, prefix) = open(&args.store, options)?;
    let spec = args.scan_spec(&prefix);
    let source = source(&store, args)?;
    let mut objects = scan(
        &store,
        candidates(&store, &spec, &source),
        &args.migrate_options(1),
        spec.concurrency,
    );
    let mut unreadable = 0u64;
    while let Some(object) = objects.next().await {
        let object = object?;
        if object.version.is_err() {
            unreadable += 1;
        }
        report::scanned(&object, cli.json);
    }
    Ok(if unreadable > 0 { EXIT_FAILURES } else { EXIT_OK })
}

async fn plan_command(cli: &Cli, options: &StoreOptions, args: &PlanArgs) -> Result<u8> {
    let (store, prefix) = open(&args.dataset.store, options)?;
    let spec = args.dataset.scan_spec(&prefix);
    let source = source(&store, &args.dataset)?;
    let migrate = args.dataset.migrate_options(args.to);
    let registry = Arc::new(registry(cli, options).await?);
    let mut entries = plan(&store, registry.clone(), &migrate, &spec, &source);
    let mut schemas = (args.check_schemas || cli.migrations.is_some())
        .then(|| SchemaChecks::new(&registry, args.dataset.schema_id(), args.to));
    let mut totals = PlanTotals::default();
    let mut listed = Vec::new();
    let mut split = match (args.split, &args.out) {
        (Some(n), Some(dir)) => Some(SplitManifests::create(dir, n, store.s3_bucket().map(str::to_string))?),
        _ => None,
    };
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        totals.add(&entry);
        if let Some(schemas) = &mut schemas {
            schemas.add(&store, &entry).await?;
        }
        if let Some(split) = &mut split
            && matches!(entry.outcome, pqmigrate_core::Outcome::NeedsMigration { .. })
        {
            split.add(&entry.key, entry.size)?;
        }
        if args.list {
            if cli.json {
                listed.push(entry);
            } else {
                report::plan_entry(&entry);
            }
        }
    }
    report::plan_totals(&totals, &listed, args.to, cli.json)?;
    if let Some(split) = split {
        split.finish()?;
    }
    let unfit = schemas.as_ref().map_or(0, |s| {
        report::schema_checks(s.checks(), cli.json);
        s.failed()
    });
    Ok(if totals.by_status.needing_attention() + unfit as u64 > 0 {
        EXIT_FAILURES
    } else {
        EXIT_OK
    })
}

async fn run(cli: &Cli, options: &StoreOptions, args: &RunArgs) -> Result<u8> {
    let registry = registry(cli, options).await?;
    registry.check_target(args.dataset.schema_id(), args.to)?;
    let (store, prefix) = open_for_writing(&args.dataset.store, options).await?;
    let store = match args.max_requests_per_second {
        Some(rate) => store.with_rate_limit(rate),
        None => store,
    };
    let store = if args.no_copy_in_place {
        store.without_copied_parts()
    } else {
        store
    };
    if cli.migrations.is_some() && !args.accept_changed_migrations {
        let changed = pqmigrate_core::status::overview(&store, &cli.journal_prefix, &registry)
            .await?
            .changed_files;
        if !changed.is_empty() {
            anyhow::bail!(
                "migration files changed since earlier runs applied them: {}; nothing was written (`status` names the objects; --accept-changed-migrations goes on)",
                changed.join(", ")
            );
        }
    }
    let spec = args.dataset.scan_spec(&prefix);
    let source = source(&store, &args.dataset)?;
    let mut migrate = args.dataset.migrate_options(args.to);
    migrate.max_steps = args.max_steps;
    migrate.verify_copied = !args.trust_copied_columns;
    let progress = Progress::new(!args.no_progress && !cli.json);
    let migrator = Migrator::new(store, Arc::new(registry), migrate)
        .scan(spec)
        .candidates(source)
        .run_options(args.run_options())
        .journal_prefix(&cli.journal_prefix)
        .lease_ttl(std::time::Duration::from_secs(args.lease_ttl_secs))
        .break_lease(args.break_lease)
        .allow_table_files(args.allow_table_files)
        .tool_version(env!("CARGO_PKG_VERSION"))
        .on_event(progress.sink());
    let cancel = migrator.cancel_token();
    tokio::spawn(async move {
        crate::signals::stop_requested().await;
        eprintln!("pqmigrate: stopping: no new objects are taken; those running finish");
        cancel.cancel();
    });
    let report = migrator.run().await;
    progress.finish();
    let report = report?;
    report::run_summary(&report.info, &report.summary, cli.json)?;
    if let Some(failure) = &report.failure {
        eprintln!("pqmigrate: the run stopped early: {}", failure.report());
        return Ok(EXIT_RUN_FAILED);
    }
    Ok(if report.is_complete() { EXIT_OK } else { EXIT_FAILURES })
}

async fn status(cli: &Cli, options: &StoreOptions, args: &StatusArgs) -> Result<u8> {
    let (store, _) = open(&args.store, options)?;
    let registry = registry(cli, options).await?;
    // A run's changes are what its journal records plus what its intents and the objects' own
    // metadata show it wrote; only an unfinished run can have writes it did not record.
    let runs = match &args.run_id {
        None => status::list(&store, &cli.journal_prefix, &registry, cli.json, args.merge).await?,
        Some(run_id) => vec![status::detail(&store, &cli.journal_prefix, run_id, &registry, cli.json).await?],
    };
    status::leases(&store, &runs).await?;
    Ok(EXIT_OK)
}

async fn rollback(cli: &Cli, options: &StoreOptions, args: &RollbackArgs) -> Result<u8> {
    let (store, _) = open_for_writing(&args.store, options).await?;
    let options = RollbackOptions::default()
        .concurrency(args.concurrency)
        .break_lease(args.break_lease);
    let report = rollback_run(&store, &cli.journal_prefix, &args.run_id, &options).await?;
    report::rollback(&args.run_id, &report.summary, cli.json)?;
    if let Some(failure) = &report.failure {
        eprintln!(
            "pqmigrate: rollback {} stopped: {}",
            report.info.run_id,
            failure.report()
        );
        return Ok(EXIT_RUN_FAILED);
    }
    Ok(if report.summary.has_failures() {
        EXIT_FAILURES
    } else {
        EXIT_OK
    })
}

async fn stamp_command(cli: &Cli, options: &StoreOptions, args: &StampArgs) -> Result<u8> {
    let (store, prefix) = open_for_writing(&args.dataset.store, options).await?;
    let spec = args.dataset.scan_spec(&prefix);
    let source = source(&store, &args.dataset)?;
    let migrate = args.dataset.migrate_options(args.version);
    let options = StampOptions::new(&migrate.schema, args.version)
        .version_key(migrate.version_key)
        .force(args.force)
        .break_lease(args.break_lease)
        .allow_table_files(args.allow_table_files);
    let summary = stamp_dataset(&store, &spec, &source, &options).await?;
    for (_, error) in &summary.failed {
        eprintln!("{error}");
    }
    let failed = summary.failed.len();
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"stamped": summary.stamped, "failed": failed, "version": args.version})
        );
    } else {
        println!(
            "stamped {} objects at version {} ({failed} failed)",
            summary.stamped, args.version
        );
    }
    Ok(if failed > 0 { EXIT_FAILURES } else { EXIT_OK })
}

async fn validate(cli: &Cli, options: &StoreOptions, args: &DatasetArgs) -> Result<u8> {
    let (store, prefix) = open(&args.store, options)?;
    // With migration files: each is checked against what the runs recorded of it.
    let mut changed_files = 0;
    if cli.migrations.is_some() {
        let registry = registry(cli, options).await?;
        let overview = pqmigrate_core::status::overview(&store, &cli.journal_prefix, &registry).await?;
        for warning in &overview.changed_steps {
            eprintln!("{warning}");
        }
        for file in &overview.changed_files {
            println!("{file}: changed since earlier runs applied it");
        }
        changed_files = overview.changed_files.len() as u64;
    }
    let spec = args.scan_spec(&prefix);
    let source = source(&store, args)?;
    let version_key = args.migrate_options(1).version_key;
    let mut checks = validate_versions(
        &store,
        candidates(&store, &spec, &source),
        &version_key,
        spec.concurrency,
    );
    let (mut checked, mut disagree, mut unreadable) = (0u64, 0u64, 0u64);
    while let Some(check) = checks.next().await {
        let check = check?;
        checked += 1;
        if check.error.is_none() {
            continue;
        }
        if check.disagrees() {
            disagree += 1;
        } else {
            unreadable += 1;
        }
        report::version_check(&check, cli.json)?;
    }
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"checked": checked, "disagree": disagree, "unreadable": unreadable})
        );
    } else {
        println!(
            "{checked} objects checked: {disagree} whose {} and footer disagree, {unreadable} unreadable",
            if store.capabilities().tags {
                "tag"
            } else {
                "recorded version"
            }
        );
    }
    Ok(if disagree + unreadable + changed_files > 0 {
        EXIT_FAILURES
    } else {
        EXIT_OK
    })
}

/// The manifests of `plan --split`: one file a worker, objects assigned as they are planned to
/// the manifest with the fewest bytes so far.
struct SplitManifests {
    files: Vec<(std::path::PathBuf, std::io::BufWriter<std::fs::File>)>,
    split: pqmigrate_core::plan::Split,
    objects: Vec<u64>,
    bucket: Option<String>,
}

impl SplitManifests {
    fn create(dir: &std::path::Path, n: usize, bucket: Option<String>) -> Result<Self> {
        anyhow::ensure!(n > 0, "--split needs at least 1 manifest");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let files = (0..n)
            .map(|i| {
                let path = dir.join(format!("manifest-{i:03}-of-{n:03}.csv"));
                let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                Ok((path, std::io::BufWriter::new(file)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            files,
            split: pqmigrate_core::plan::Split::new(n),
            objects: vec![0; n],
            bucket,
        })
    }

    fn add(&mut self, key: &str, size: u64) -> Result<()> {
        use std::io::Write;
        let part = self.split.assign(size);
        self.objects[part] += 1;
        let line = pqmigrate_core::scan::manifest_line_of(self.bucket.as_deref(), key);
        writeln!(self.files[part].1, "{line}")?;
        Ok(())
    }

    /// Flushes the manifests and says what each holds (on stderr, so `--json` stays clean).
    fn finish(self) -> Result<()> {
        use std::io::Write;
        for (i, (path, mut file)) in self.files.into_iter().enumerate() {
            file.flush()?;
            eprintln!(
                "{}: {} objects, {}",
                path.display(),
                self.objects[i],
                report::human_bytes(self.split.loads()[i] as f64)
            );
        }
        Ok(())
    }
}
