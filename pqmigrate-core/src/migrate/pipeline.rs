//! The rewrite as one pipeline: row groups fetched one ahead, rewritten on a blocking thread,
//! and the output streamed to the upload, for both layouts (the whole file streamed, or the new
//! chunks and footer appended after the data region copied in place).

use std::io::Write;
use std::ops::Range;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::migration::StepRegistration;
use crate::rewrite::{
    AppendPlan, AppendRewriter, CopyCheck, FileRanges, Footer, RewriteTarget, RowGroupRewriter, plan_append,
};
use crate::store::{CopySource, MIN_PART, Store};
use crate::transfer::{ConditionalUpload, ObjectReader};

/// The append plan of an object, or why it streams whole: the store must copy parts, the
/// file take the append layout, and its data region fill a 5 MiB part.
pub(super) fn append_plan_for(
    store: &Store,
    key: &str,
    footer: &Footer,
    chain: &[StepRegistration],
) -> Result<std::result::Result<AppendPlan, String>> {
    if !store.copies_parts() {
        return Ok(Err("the store copies no parts".to_string()));
    }
    let plan = match plan_append(key, footer, chain)? {
        Ok(plan) => plan,
        Err(why) => return Ok(Err(why.to_string())),
    };
    if plan.region_end < MIN_PART {
        return Ok(Err(format!(
            "its data region ({} bytes) is smaller than a 5 MiB part",
            plan.region_end
        )));
    }
    Ok(Ok(plan))
}

/// How an append rewrite failed: the store refused the copied part (the caller streams the
/// file whole instead), or anything else.
pub(super) enum Appending {
    CopyRefused(Error),
    Failed(Error),
}

impl Appending {
    /// A failed copied part: the store's refusal, or any other failure.
    pub(super) fn of_copy(e: Error) -> Self {
        if copy_refused(&e) {
            Appending::CopyRefused(e)
        } else {
            Appending::Failed(e)
        }
    }

    pub(super) fn into_error(self) -> Error {
        match self {
            Appending::CopyRefused(e) | Appending::Failed(e) => e,
        }
    }
}

impl From<Error> for Appending {
    fn from(e: Error) -> Self {
        Appending::Failed(e)
    }
}

/// Whether a failed copied part means the store does not do them (rather than a changed
/// source or a transient failure).
pub(super) fn copy_refused(e: &Error) -> bool {
    matches!(e, Error::Unsupported { .. })
}

/// Output bytes handed from the encoder to the uploader at a time.
pub(super) const OUTPUT_CHUNK: usize = 1024 * 1024;

/// The layout of the output.
pub(super) enum Layout<'a> {
    /// The whole file rewritten and streamed.
    Whole,
    /// The input's data region (`source`) copied in place by the store, then the new chunks and
    /// footer appended after it.
    Append { plan: &'a AppendPlan, source: CopySource },
}

/// The rewriter of either layout, fed one row group at a time on a blocking thread.
enum Encoder {
    Whole(RowGroupRewriter<ChannelSink>),
    Append(AppendRewriter<ChannelSink>),
}

impl Encoder {
    fn new(
        key: &str,
        footer: &Footer,
        chain: &[StepRegistration],
        target: &RewriteTarget,
        append: bool,
        sink: ChannelSink,
    ) -> Result<Self> {
        Ok(if append {
            let rewriter = AppendRewriter::new(key, footer, chain, target, sink)?.map_err(|(why, _)| Error::Write {
                key: key.to_string(),
                source: parquet::errors::ParquetError::General(format!("the append layout does not apply: {why}")),
            })?;
            Encoder::Append(rewriter)
        } else {
            Encoder::Whole(RowGroupRewriter::new(key, footer, chain, target, sink)?)
        })
    }

    /// The check of the chunks an append copies, taken out of the encoder for the caller to
    /// run beside it; `None` for a whole file (its rewriter checks what it copies) or when
    /// checks are off.
    fn take_copy_check(&mut self) -> Option<CopyCheck> {
        match self {
            Encoder::Whole(_) => None,
            Encoder::Append(rewriter) => rewriter.take_copy_check(),
        }
    }

    fn rewrite_row_group(&mut self, index: usize, input: &FileRanges) -> Result<()> {
        match self {
            Encoder::Whole(rewriter) => rewriter.rewrite_row_group(index, input),
            Encoder::Append(rewriter) => rewriter.rewrite_row_group(index, input),
        }
    }

    fn finish(self) -> Result<(ChannelSink, u64)> {
        match self {
            Encoder::Whole(rewriter) => rewriter.finish(),
            Encoder::Append(rewriter) => rewriter.finish().map(|(sink, rows, _)| (sink, rows)),
        }
    }
}

/// The most bytes of copied chunks fetched together to be checked: 2 MiB checks at the speed
/// of 4 MiB (and of 1 MiB) on local disk in less memory; 512 KiB and less are slower.
const CHECK_WINDOW: u64 = 2 * 1024 * 1024;

/// Encoded chunks of [`OUTPUT_CHUNK`] an append's encoder may run ahead of its upload (which
/// sends them once the store has copied the data region).
const APPEND_OUTPUT_AHEAD: usize = 8;

/// The rewrite as a pipeline of parts running at once, for either layout: row groups fetched
/// one ahead; decoded, transformed and encoded on a blocking thread; the output streamed to
/// `upload` (after the copied data region, when appending); and, appending, the copied chunks
/// of columns no step reads fetched and checked in windows of at most [`CHECK_WINDOW`] on other
/// threads (the encoder checks those it reads). Memory holds about two row groups (only the
/// columns read, when appending), a part or [`APPEND_OUTPUT_AHEAD`] chunks, and a few windows,
/// whatever the file size. Returns the rows written; the upload is left for the caller to finish or abort.
pub(super) async fn rewrite_into(
    reader: &ObjectReader,
    footer: &Footer,
    chain: &[StepRegistration],
    target: &RewriteTarget,
    layout: Layout<'_>,
    upload: &mut ConditionalUpload,
) -> std::result::Result<u64, Appending> {
    let row_groups = footer.num_row_groups();
    let key = reader.key().to_string();
    let (plan, source) = match layout {
        Layout::Whole => (None, None),
        Layout::Append { plan, source } => (Some(plan), Some(source)),
    };
    let (input_tx, mut input_rx) = mpsc::channel::<(usize, FileRanges)>(1);
    // Appending, the encoder may run ahead while the store copies the data region.
    let (output_tx, mut output_rx) = mpsc::channel::<Bytes>(if plan.is_some() { APPEND_OUTPUT_AHEAD } else { 4 });
    // A whole file's first buffer is sized for the whole output when that goes out as one PUT,
    // so it is never copied again; a larger output continues in small chunks, streamed as parts.
    let first_chunk = match plan {
        Some(_) => OUTPUT_CHUNK,
        None => {
            let estimate = usize::try_from(reader.size()).unwrap_or(usize::MAX);
            let estimate = estimate.saturating_add(estimate / 4).saturating_add(OUTPUT_CHUNK);
            upload
                .whole_object_limit()
                .map_or(estimate, |limit| estimate.min(limit.saturating_add(1)))
                .max(OUTPUT_CHUNK)
        }
    };
    let sink = ChannelSink::new(output_tx, first_chunk);
    let mut encoder = Encoder::new(&key, footer, chain, target, plan.is_some(), sink)?;
    let copy_check = encoder.take_copy_check();
    let encoder = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut received = 0;
            while let Some((index, ranges)) = input_rx.blocking_recv() {
                encoder.rewrite_row_group(index, &ranges)?;
                received += 1;
            }
            if received != row_groups {
                return Err(Error::Write {
                    key,
                    source: parquet::errors::ParquetError::General(format!(
                        "input ended after {received} of {row_groups} row groups"
                    )),
                });
            }
            let (sink, rows) = encoder.finish()?;
            sink.close().map_err(|e| Error::Write {
                key: key.clone(),
                source: e.into(),
            })?;
            Ok(rows)
        })
    };
    let fetch = async move {
        for index in 0..row_groups {
            // Reserve the slot first, so at most one row group waits while one is encoded.
            let Ok(slot) = input_tx.reserve().await else {
                break;
            };
            let ranges = match plan {
                Some(plan) => reader.ranges(&plan.reads[index]).await?,
                _ => reader.row_group(footer, index).await?,
            };
            slot.send((index, ranges));
        }
        Ok::<(), Error>(())
    };
    // Owns the receiver: when an upload fails it is dropped with this future, which stops the
    // encoder's sends instead of leaving it blocked on a full channel.
    let send = async move {
        if let Some(source) = &source {
            upload.copy_first(source).await.map_err(Appending::of_copy)?;
        }
        while let Some(chunk) = output_rx.recv().await {
            upload.push(chunk).await?;
        }
        if source.is_some() {
            // The copies run while the new bytes go out; a refusal shows here at the latest.
            upload.copies_done().await.map_err(Appending::of_copy)?;
        }
        Ok::<(), Appending>(())
    };
    let check = check_copied(reader, copy_check, row_groups);
    let (fetched, sent, encoded, checked) = tokio::join!(fetch, send, encoder, check);
    // Steps run under their own panic guard, so a task that ends abnormally failed outside them.
    let encoded = encoded.map_err(|e| Error::Task {
        key: key.clone(),
        message: e.to_string(),
    });
    // The most telling error first: a refused copy (the caller then streams the file whole);
    // a changed or unreadable input, which explains an encoder that stopped early; a failed
    // upload, which explains an encoder whose output had nowhere to go. An encoder failure ends
    // the upload's input cleanly, so it surfaces last.
    if let Err(Appending::CopyRefused(e)) = sent {
        return Err(Appending::CopyRefused(e));
    }
    fetched?;
    checked?;
    sent?;
    Ok(encoded??)
}

/// Fetches and checks the copied chunks of every row group in windows of chunks adjacent in the
/// file, as many at a time as the store's [`Capabilities::reads_in_flight`], each checked on a
/// blocking thread: the check of the default mode in the memory of a few windows, in a few
/// requests a row group, on the cores the encoder leaves.
///
/// [`Capabilities::reads_in_flight`]: crate::store::Capabilities::reads_in_flight
async fn check_copied(reader: &ObjectReader, check: Option<CopyCheck>, row_groups: usize) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let Some(check) = check else {
        return Ok(());
    };
    let in_flight = reader.store().capabilities().reads_in_flight.max(1);
    let windows = futures::stream::iter(0..row_groups)
        .map(|index| futures::stream::iter(check_windows(&check, index).into_iter().map(move |w| (index, w))))
        .flatten();
    windows
        .map(|(index, window)| {
            let check = check.clone();
            async move {
                let ranges: Vec<Range<u64>> = window.iter().map(|(_, range)| range.clone()).collect();
                let input = reader.ranges(&ranges).await?;
                tokio::task::spawn_blocking(move || {
                    window
                        .iter()
                        .try_for_each(|(position, _)| check.check_chunk(index, *position, &input))
                })
                .await
                .map_err(|e| Error::Task {
                    key: reader.key().to_string(),
                    message: e.to_string(),
                })?
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<()>()
        .await
}

/// The copied chunks of row group `index` (their positions in the check and their ranges), in
/// windows of at most [`CHECK_WINDOW`] bytes.
fn check_windows(check: &CopyCheck, index: usize) -> Vec<Vec<(usize, Range<u64>)>> {
    windows_of(check.chunk_ranges(index), CHECK_WINDOW)
}

/// `chunks` (numbered in the order given) in file order, cut into windows of at most `limit`
/// bytes; a chunk larger than that is a window of its own.
pub(super) fn windows_of(chunks: Vec<Range<u64>>, limit: u64) -> Vec<Vec<(usize, Range<u64>)>> {
    let mut chunks: Vec<(usize, Range<u64>)> = chunks.into_iter().enumerate().collect();
    chunks.sort_by_key(|(_, range)| range.start);
    let mut windows: Vec<Vec<(usize, Range<u64>)>> = Vec::new();
    let mut size = 0;
    for (position, range) in chunks {
        let len = range.end - range.start;
        if size + len > limit || windows.is_empty() {
            windows.push(Vec::new());
            size = 0;
        }
        size += len;
        windows.last_mut().expect("pushed above").push((position, range));
    }
    windows
}

/// A `Write` that hands the encoder's output to the async uploader in chunks: a first one of
/// the size it is given, then chunks of [`OUTPUT_CHUNK`].
pub(super) struct ChannelSink {
    tx: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl ChannelSink {
    fn new(tx: mpsc::Sender<Bytes>, first_chunk: usize) -> Self {
        Self {
            tx,
            buffer: Vec::with_capacity(first_chunk),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(OUTPUT_CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    fn close(mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for ChannelSink {
    /// Fills the chunk to its capacity and no further (growing it would copy it), sending it
    /// when full; `write_all` comes back for the rest.
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.buffer.capacity() - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if taken == room {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
