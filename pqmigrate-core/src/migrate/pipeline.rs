//! The rewrite as a pipeline: row groups fetched one ahead, rewritten on blocking threads, and
//! the output streamed to the upload, for both layouts (the whole file streamed, or the new
//! chunks and footer appended after the data region copied in place).

use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::migration::StepRegistration;
use crate::rewrite::{AppendPlan, AppendRewriter, FileRanges, Footer, RowGroupRewriter};
use crate::store::CopySource;
use crate::transfer::{ConditionalUpload, ObjectReader};

use super::{Appending, copy_refused};

/// What the rewrite writes.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) version_key: String,
    pub(super) version: u32,
    pub(super) verify_copied: bool,
}

/// Output bytes handed from the encoder to the uploader at a time.
pub(super) const OUTPUT_CHUNK: usize = 1024 * 1024;

/// The rewrite as a pipeline of three parts running at once: row groups fetched one ahead,
/// checked, decoded, transformed and encoded on blocking threads, and the output streamed to
/// `upload`. Memory holds about two row groups and a part, whatever the file size. Returns the
/// rows written; the upload is left for the caller to finish or abort.
pub(super) async fn stream_rewrite(
    reader: &ObjectReader,
    footer: &Footer,
    chain: &[StepRegistration],
    target: &Target,
    upload: &mut ConditionalUpload,
) -> std::result::Result<u64, Appending> {
    let row_groups = footer.num_row_groups();
    let (input_tx, mut input_rx) = mpsc::channel::<(usize, FileRanges)>(1);
    let (output_tx, mut output_rx) = mpsc::channel::<Bytes>(4);
    let key = reader.key().to_string();
    // The first buffer is sized for the whole output when that goes out as one PUT, so it is
    // never copied again; a larger output continues in small chunks, streamed as parts.
    let estimate = usize::try_from(reader.size()).unwrap_or(usize::MAX);
    let estimate = estimate.saturating_add(estimate / 4).saturating_add(OUTPUT_CHUNK);
    let first_chunk = upload
        .whole_object_limit()
        .map_or(estimate, |limit| estimate.min(limit.saturating_add(1)))
        .max(OUTPUT_CHUNK);
    let encoder = {
        let footer = footer.clone();
        let chain = chain.to_vec();
        let target = target.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let sink = ChannelSink::new(output_tx, first_chunk);
            let mut rewriter = RowGroupRewriter::new(&key, &footer, &chain, &target.version_key, target.version, sink)?
                .verify_copied(target.verify_copied);
            let mut received = 0;
            while let Some((index, ranges)) = input_rx.blocking_recv() {
                rewriter.rewrite_row_group(index, &ranges)?;
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
            let (sink, rows) = rewriter.finish()?;
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
            slot.send((index, reader.row_group(footer, index).await?));
        }
        Ok::<(), Error>(())
    };
    // Owns the receiver: when an upload fails it is dropped with this future, which stops the
    // encoder's sends instead of leaving it blocked on a full channel.
    let send = async move {
        while let Some(chunk) = output_rx.recv().await {
            upload.push(chunk).await?;
        }
        Ok::<(), Error>(())
    };
    let (fetched, sent, encoded) = tokio::join!(fetch, send, encoder);
    // Steps run under their own panic guard, so a task that ends abnormally failed outside them.
    let encoded = encoded.map_err(|e| Error::Task {
        key: key.clone(),
        message: e.to_string(),
    });
    // The most telling error first: a changed or unreadable input explains an encoder that
    // stopped early, and a failed upload explains an encoder whose output had nowhere to go.
    // An encoder failure ends the upload's input cleanly, so it surfaces last.
    fetched?;
    sent?;
    Ok(encoded??)
}

/// The append rewrite as the same three-part pipeline: the input's data region copied by the
/// store first (while the computed columns are encoded), then the new chunks and footer
/// streamed after it. Only the read columns' chunks come down, or whole row groups when the
/// copied chunks are checked. Returns the rows written.
pub(super) async fn stream_append(
    reader: &ObjectReader,
    footer: &Footer,
    chain: &[StepRegistration],
    target: &Target,
    plan: &AppendPlan,
    source: CopySource,
    upload: &mut ConditionalUpload,
) -> std::result::Result<u64, Appending> {
    let row_groups = footer.num_row_groups();
    let (input_tx, mut input_rx) = mpsc::channel::<(usize, FileRanges)>(1);
    // Room for the encoder to run ahead while the store copies the data region.
    let (output_tx, mut output_rx) = mpsc::channel::<Bytes>(16);
    let key = reader.key().to_string();
    let encoder = {
        let footer = footer.clone();
        let chain = chain.to_vec();
        let target = target.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let sink = ChannelSink::new(output_tx, OUTPUT_CHUNK);
            let mut rewriter = AppendRewriter::new(&key, &footer, &chain, &target.version_key, target.version, sink)?
                .map_err(|(why, _)| Error::Write {
                    key: key.clone(),
                    source: parquet::errors::ParquetError::General(format!("the append layout does not apply: {why}")),
                })?
                .verify_copied(target.verify_copied);
            let mut received = 0;
            while let Some((index, ranges)) = input_rx.blocking_recv() {
                rewriter.rewrite_row_group(index, &ranges)?;
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
            let (sink, rows, _) = rewriter.finish()?;
            sink.close().map_err(|e| Error::Write {
                key: key.clone(),
                source: e.into(),
            })?;
            Ok(rows)
        })
    };
    let verify = target.verify_copied;
    let fetch = async move {
        for index in 0..row_groups {
            let Ok(slot) = input_tx.reserve().await else {
                break;
            };
            let ranges = if verify {
                reader.row_group(footer, index).await?
            } else {
                reader.ranges(&plan.reads[index]).await?
            };
            slot.send((index, ranges));
        }
        Ok::<(), Error>(())
    };
    let send = async move {
        if let Err(e) = upload.copy_first(&source).await {
            return Err(if copy_refused(&e) {
                Appending::CopyRefused(e)
            } else {
                Appending::Failed(e)
            });
        }
        while let Some(chunk) = output_rx.recv().await {
            upload.push(chunk).await?;
        }
        // The copies run while the new bytes go out; a refusal shows here at the latest.
        upload.copies_done().await.map_err(|e| {
            if copy_refused(&e) {
                Appending::CopyRefused(e)
            } else {
                Appending::Failed(e)
            }
        })?;
        Ok::<(), Appending>(())
    };
    let (fetched, sent, encoded) = tokio::join!(fetch, send, encoder);
    let encoded = encoded.map_err(|e| Error::Task {
        key: key.clone(),
        message: e.to_string(),
    });
    // A refused copy first: the caller then streams the file whole.
    sent?;
    fetched?;
    Ok(encoded??)
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
