//! One function per command, each mapping arguments to core calls.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use pqmigrate_core::{
    CancellationToken, Candidate, Executor, Job, JournalWriter, LocalExecutor, PlanEntry, PlanTotals, Registry,
    RunInfo, ScanSpec, Status, Store, StoreOptions, classify, list_candidates, list_runs, manifest_candidates,
    new_run_id, read_run, rollback_run, scan, stamp,
};

use crate::args::{Cli, Command, DatasetArgs, PlanArgs, RollbackArgs, RunArgs, StampArgs, StatusArgs};
use crate::progress::Progress;
use crate::report;
use crate::{EXIT_FAILURES, EXIT_OK};

pub(crate) async fn dispatch(cli: Cli) -> Result<u8> {
    let options = StoreOptions {
        endpoint: cli.endpoint.clone(),
        region: cli.region.clone(),
        max_retries: None,
        ..StoreOptions::default()
    };
    match &cli.command {
        Command::Steps => steps(&cli),
        Command::Scan(args) => scan_command(&cli, &options, args).await,
        Command::Plan(args) => plan(&cli, &options, args).await,
        Command::Run(args) => run(&cli, &options, args).await,
        Command::Status(args) => status(&cli, &options, args).await,
        Command::Rollback(args) => rollback(&cli, &options, args).await,
        Command::Stamp(args) => stamp_command(&cli, &options, args).await,
    }
}

fn registry() -> Result<Registry> {
    Ok(Registry::from_inventory()?)
}

fn open(url: &str, options: &StoreOptions) -> Result<(Store, String)> {
    let (store, prefix) = Store::open(url, options).with_context(|| format!("cannot open store {url}"))?;
    Ok((with_injected_faults(store)?, prefix))
}

/// Wraps the store in the fault injector when `PQM_INJECT_FAULTS` asks for it (chaos testing):
/// `throttle=0.2,timeout=0.01,reset=0.01,upload=0.01,latency_ms=5,seed=7`.
fn with_injected_faults(store: Store) -> Result<Store> {
    let Ok(spec) = std::env::var("PQM_INJECT_FAULTS") else {
        return Ok(store);
    };
    let config = pqmigrate_core::fault::FaultConfig::parse(&spec)?;
    tracing::warn!("injecting faults into every store call: {spec}");
    Ok(store.map_inner(|inner| Arc::new(pqmigrate_core::fault::FaultyStore::new(inner, config))))
}

fn steps(cli: &Cli) -> Result<u8> {
    let registry = registry()?;
    if cli.json {
        let steps: Vec<_> = registry
            .steps()
            .map(|s| serde_json::json!({"schema": s.schema, "from": s.from, "to": s.to, "name": s.name}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&steps)?);
    } else if registry.is_empty() {
        println!("no steps registered in this binary (link a step crate into a binary that calls pqmigrate_cli::main)");
    } else {
        for s in registry.steps() {
            println!("{:<24} {:>4} -> {:<4} {}", s.schema, s.from, s.to, s.name);
        }
    }
    Ok(EXIT_OK)
}

/// The candidates of a data set: the manifest's keys, or a listing.
fn candidates(
    store: &Store,
    spec: &ScanSpec,
    args: &DatasetArgs,
) -> Result<BoxStream<'static, pqmigrate_core::Result<Candidate>>> {
    match &args.manifest {
        None => Ok(list_candidates(store, spec)),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
            let bucket = store.s3_api().map(|a| a.bucket().to_string());
            let keys = manifest_candidates(&text, bucket.as_deref(), spec)?;
            Ok(stream::iter(keys.into_iter().map(Ok)).boxed())
        }
    }
}

/// Scans and classifies the data set as a stream of plan entries.
fn plan_stream(
    store: &Store,
    args: &DatasetArgs,
    url_prefix: &str,
    target: u32,
    registry: Arc<Registry>,
) -> Result<BoxStream<'static, pqmigrate_core::Result<PlanEntry>>> {
    let spec = args.scan_spec(url_prefix);
    let options = args.migrate_options(target);
    let schema = options.schema.clone();
    let objects = scan(store, candidates(store, &spec, args)?, &options, spec.concurrency);
    Ok(objects
        .map_ok(move |o| classify(&registry, &schema, target, &o))
        .boxed())
}

async fn scan_command(cli: &Cli, options: &StoreOptions, args: &DatasetArgs) -> Result<u8> {
    let (store, prefix) = open(&args.store, options)?;
    let spec = args.scan_spec(&prefix);
    let migrate = args.migrate_options(1);
    let mut objects = scan(&store, candidates(&store, &spec, args)?, &migrate, spec.concurrency);
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

async fn plan(cli: &Cli, options: &StoreOptions, args: &PlanArgs) -> Result<u8> {
    let (store, prefix) = open(&args.dataset.store, options)?;
    let registry = Arc::new(registry()?);
    let mut entries = plan_stream(&store, &args.dataset, &prefix, args.to, registry)?;
    let mut totals = PlanTotals::default();
    let mut listed = Vec::new();
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        totals.add(&entry);
        if args.list {
            if cli.json {
                listed.push(entry);
            } else {
                report::plan_entry(&entry);
            }
        }
    }
    report::plan_totals(&totals, &listed, args.to, cli.json)?;
    let blocked = totals.count("missing_step") + totals.count("unreadable");
    Ok(if blocked > 0 { EXIT_FAILURES } else { EXIT_OK })
}

async fn run(cli: &Cli, options: &StoreOptions, args: &RunArgs) -> Result<u8> {
    let (store, prefix) = open(&args.dataset.store, options)?;
    let store = match args.max_requests_per_second {
        Some(rate) => store.with_rate_limit(rate),
        None => store,
    };
    let registry = Arc::new(registry()?);
    let spec = args.dataset.scan_spec(&prefix);
    let mut migrate = args.dataset.migrate_options(args.to);
    migrate.max_steps = args.max_steps;
    migrate.verify_copied = !args.trust_copied_columns;
    let run_id = new_run_id();
    let info = RunInfo {
        run_id: run_id.clone(),
        started_at: pqmigrate_core::now_rfc3339(),
        host: pqmigrate_core::host_name(),
        store: store.url().to_string(),
        schema: migrate.schema.clone(),
        target: args.to,
        prefixes: spec.prefixes.clone(),
        suffix: spec.suffix.clone(),
        filter: spec.filter.clone(),
        shard: spec.shard.map(|s| format!("{}/{}", s.index, s.count)),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let lease_key = pqmigrate_core::lease_key(&info.schema, info.shard.as_deref());
    if args.break_lease {
        pqmigrate_core::break_lease(&store, &lease_key).await?;
    }
    let ttl = std::time::Duration::from_secs(args.lease_ttl_secs.max(1));
    let lease = pqmigrate_core::Lease::acquire(&store, &lease_key, &run_id, &info.started_at, ttl).await?;
    if let Some(stale) = &lease.took_over {
        eprintln!(
            "pqmigrate: took over the expired lease of run {} on {} (expired {}); that run did not finish",
            stale.run_id, stale.host, stale.expires_at
        );
    }
    let result = run_leased(cli, args, &store, &prefix, registry, migrate, info, &lease).await;
    let released = lease.release().await;
    let code = result?;
    released?;
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
async fn run_leased(
    cli: &Cli,
    args: &RunArgs,
    store: &Store,
    prefix: &str,
    registry: Arc<Registry>,
    migrate: pqmigrate_core::MigrateOptions,
    info: RunInfo,
    lease: &pqmigrate_core::Lease,
) -> Result<u8> {
    let run_id = info.run_id.clone();
    let mut journal = JournalWriter::start(store, &cli.journal_prefix, &info).await?;
    let progress = Progress::new(!args.no_progress && !cli.json);
    let counter = progress.clone();
    let entries = plan_stream(store, &args.dataset, prefix, args.to, registry.clone())?
        .inspect(move |e| {
            if let Ok(e) = e {
                counter.found(e);
            }
        })
        .boxed();
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let lost = lease.lost();
    tokio::spawn(async move {
        // Ctrl-C, or a lease taken by another run, stops taking new objects.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = lost.cancelled() => {}
        }
        on_signal.cancel();
    });
    let job = Job {
        store: store.clone(),
        registry,
        migrate,
        entries,
        events: progress.sink(),
        cancel,
    };
    let executor = LocalExecutor::new(args.run_options());
    let summary = executor.execute(job, &mut journal, &run_id).await;
    progress.finish();
    let summary = summary?;
    journal.finish(&summary).await?;
    report::run_summary(&info, &summary, cli.json)?;
    Ok(if summary.has_failures() { EXIT_FAILURES } else { EXIT_OK })
}

async fn status(cli: &Cli, options: &StoreOptions, args: &StatusArgs) -> Result<u8> {
    let (store, _) = open(&args.store, options)?;
    let runs = match &args.run_id {
        None => {
            let mut runs = Vec::new();
            for info in list_runs(&store, &cli.journal_prefix).await? {
                runs.push(read_run(&store, &cli.journal_prefix, &info.run_id).await?);
            }
            report::runs(&runs, cli.json)?;
            runs
        }
        Some(run_id) => {
            let journal = read_run(&store, &cli.journal_prefix, run_id).await?;
            report::run_detail(&journal, cli.json)?;
            vec![journal]
        }
    };
    // Leases of the data sets these runs touched: a live one is a run in progress, an expired
    // one a run that died.
    let mut seen = std::collections::BTreeSet::new();
    for run in &runs {
        let key = pqmigrate_core::lease_key(&run.info.schema, run.info.shard.as_deref());
        if seen.insert(key.clone())
            && let Some((lease, expired)) = pqmigrate_core::current_lease(&store, &key).await?
        {
            let state = if expired { "expired" } else { "held" };
            eprintln!(
                "lease {key}: {state} by run {} on {} (expires {})",
                lease.run_id, lease.host, lease.expires_at
            );
        }
    }
    for warning in report::fingerprint_warnings(&registry()?, &runs) {
        eprintln!("warning: {warning}");
    }
    Ok(EXIT_OK)
}

async fn rollback(cli: &Cli, options: &StoreOptions, args: &RollbackArgs) -> Result<u8> {
    let (store, _) = open(&args.store, options)?;
    let run = read_run(&store, &cli.journal_prefix, &args.run_id).await?;
    let lease_key = pqmigrate_core::lease_key(&run.info.schema, run.info.shard.as_deref());
    if args.break_lease {
        pqmigrate_core::break_lease(&store, &lease_key).await?;
    }
    let rollback_id = format!("rollback-{}", new_run_id());
    let lease = pqmigrate_core::Lease::acquire(
        &store,
        &lease_key,
        &rollback_id,
        &pqmigrate_core::now_rfc3339(),
        pqmigrate_core::DEFAULT_LEASE_TTL,
    )
    .await?;
    let records = rollback_run(&store, &cli.journal_prefix, &args.run_id, args.concurrency).await;
    lease.release().await?;
    let records = records?;
    let failed = records.iter().filter(|r| r.status == Status::Failed).count();
    report::rollback(&args.run_id, &records, cli.json)?;
    Ok(if failed > 0 { EXIT_FAILURES } else { EXIT_OK })
}

async fn stamp_command(cli: &Cli, options: &StoreOptions, args: &StampArgs) -> Result<u8> {
    let (store, prefix) = open(&args.dataset.store, options)?;
    if store.s3_api().is_none() {
        bail!("stamp sets object tags, which {} does not have", store.url());
    }
    let spec = args.dataset.scan_spec(&prefix);
    let version_key = args.dataset.migrate_options(args.version).version_key;
    let mut keys = candidates(&store, &spec, &args.dataset)?;
    let (mut stamped, mut failed) = (0u64, 0u64);
    while let Some(candidate) = keys.next().await {
        let candidate = candidate?;
        let size = match candidate.size {
            Some(size) => size,
            None => store.head_size(&candidate.key).await?,
        };
        match stamp(&store, &candidate.key, size, &version_key, args.version).await {
            Ok(()) => stamped += 1,
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"stamped": stamped, "failed": failed, "version": args.version})
        );
    } else {
        println!(
            "stamped {stamped} objects at version {} ({failed} failed)",
            args.version
        );
    }
    Ok(if failed > 0 { EXIT_FAILURES } else { EXIT_OK })
}
