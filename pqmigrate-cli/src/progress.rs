//! The run's progress bar: objects and bytes per second, ETA, retries and failures so far.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pqmigrate_core::{Event, EventSink};

/// Follows a run's events. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    bytes: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
}

impl Progress {
    /// A progress bar on stderr when `visible` and stderr is a terminal; hidden otherwise.
    pub(crate) fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} objects, {msg}, ETA {eta}",
            )
            .expect("valid template"),
        );
        let progress = Self {
            bar,
            state: Arc::default(),
        };
        progress.update_message();
        progress
    }

    fn update_message(&self) {
        let elapsed = self.bar.elapsed().as_secs_f64().max(1e-3);
        let bytes = self.state.bytes.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "{:.1} objects/s, {}/s, {} retries, {} failed",
            self.bar.position() as f64 / elapsed,
            crate::report::human_bytes(bytes as f64 / elapsed),
            self.state.retries.load(Ordering::Relaxed),
            self.state.failures.load(Ordering::Relaxed)
        ));
    }

    /// The executor's event sink.
    pub(crate) fn sink(&self) -> EventSink {
        let me = self.clone();
        Arc::new(move |event: &Event| match event {
            Event::Planned(_) => me.bar.inc_length(1),
            Event::Retrying { .. } => {
                me.state.retries.fetch_add(1, Ordering::Relaxed);
                me.update_message();
            }
            Event::Finished(record) => {
                me.state.bytes.fetch_add(record.bytes_in(), Ordering::Relaxed);
                if record.status().needs_attention() {
                    me.state.failures.fetch_add(1, Ordering::Relaxed);
                }
                me.bar.inc(1);
                me.update_message();
            }
            Event::TookOverLease(stale) => me.bar.suspend(|| {
                eprintln!(
                    "pqmigrate: took over the expired lease of run {} on {} (expired {}); that run did not finish",
                    stale.run_id, stale.host, stale.expires_at
                );
            }),
            _ => {}
        })
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
