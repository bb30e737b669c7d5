//! Mode etcd-wal: what etcd's WAL does on every Ready (server/storage/wal):
//! entries are encoded into a page writer that flushes in 4096-byte aligned
//! chunks once 128 KiB are buffered, the rest is flushed at the sync, then
//! one fdatasync per batch. Segments are 64,000,000 bytes, preallocated, and
//! when one is full it is cut: truncated to its end, synced, and the next
//! segment (prepared in the background) takes over.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::time::Instant;

use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::system::dirfd::DirHandle;
use crate::histogram::LatencyHistogram;

use super::backend;
use super::guard;
use super::params::Params;
use super::recorder::{ns_between, Outcome, Recorder, StopReason};
use super::segment::{self, PreparedSegment};

/// etcd's walPageBytes (8 x 512-byte sectors).
pub const PAGE_BYTES: usize = 4096;
/// etcd's pagewriter defaultBufferBytes.
pub const WATERMARK_BYTES: usize = 128 * 1024;

/// etcd's ioutil.PageWriter: buffers small writes and flushes on page
/// boundaries relative to the file, so a write never splits a page it could
/// have completed. Every write(2) it issues is timed.
#[derive(Debug)]
pub struct PageWriter {
    buf: Vec<u8>,
    /// Offset within a page of the file position where `buf` starts.
    page_offset: usize,
    /// Bytes written to the current file so far.
    pub file_offset: u64,
}

impl PageWriter {
    pub fn new() -> Self {
        PageWriter {
            buf: Vec::with_capacity(WATERMARK_BYTES + PAGE_BYTES),
            page_offset: 0,
            file_offset: 0,
        }
    }

    /// Starts a new file at offset 0.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.page_offset = 0;
        self.file_offset = 0;
    }

    pub fn write(
        &mut self,
        mut p: &[u8],
        out: &mut impl Write,
        path: &Path,
        rec: &mut Recorder,
    ) -> Result<(), ProbeError> {
        loop {
            if self.buf.len() + p.len() <= WATERMARK_BYTES {
                self.buf.extend_from_slice(p);
                return Ok(());
            }
            // Complete the partial page in the buffer so the flush ends on a
            // page boundary; if p cannot complete it, keep it buffered.
            let used = (self.page_offset + self.buf.len()) % PAGE_BYTES;
            if used != 0 {
                let slack = (PAGE_BYTES - used).min(p.len());
                self.buf.extend_from_slice(&p[..slack]);
                p = &p[slack..];
                if p.is_empty() {
                    return Ok(());
                }
            }
            self.flush(out, path, rec)?;
            if p.len() > PAGE_BYTES {
                let whole = p.len() / PAGE_BYTES * PAGE_BYTES;
                timed_write(&p[..whole], out, path, rec)?;
                self.file_offset += whole as u64;
                p = &p[whole..];
            }
        }
    }

    pub fn flush(
        &mut self,
        out: &mut impl Write,
        path: &Path,
        rec: &mut Recorder,
    ) -> Result<(), ProbeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        timed_write(&self.buf, out, path, rec)?;
        self.page_offset = (self.page_offset + self.buf.len()) % PAGE_BYTES;
        self.file_offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Default for PageWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn timed_write(
    bytes: &[u8],
    out: &mut impl Write,
    path: &Path,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let t0 = Instant::now();
    out.write_all(bytes).map_err(|e| ProbeError::io(path, e))?;
    rec.record_write(ns_between(t0, Instant::now()), bytes.len());
    Ok(())
}

/// The segment being written.
struct Tail {
    file: File,
    path: PathBuf,
    seq: u64,
}

pub fn run(
    params: &Params,
    work: &DirHandle,
    cancel: &CancelToken,
    rec: &mut Recorder,
) -> Result<Outcome, ProbeError> {
    let segment_bytes = params.segment_size.0;
    // Puts the WAL has synced, which etcd then applies to its backend.
    let batch = backend::Batch::default();
    let batch = &batch;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Result<PreparedSegment, ProbeError>>(0);
        let pipeline = std::thread::Builder::new()
            .name("iq-fsync-segments".into())
            .spawn_scoped(scope, move || {
                segment::prepare_ahead(work, segment_bytes, tx)
            })
            .map_err(|e| ProbeError::Failed {
                probe: super::NAME.into(),
                message: format!("cannot start the segment thread: {e}"),
            })?;
        let (done, finished) = sync_channel::<()>(0);
        // As etcd, the apply runs beside the WAL: a put whose apply waits
        // for a backend commit does not hold up the next sync, unless one
        // client sends the puts in turn (`sequential`): then the writer
        // waits for each batch's apply before it writes the next.
        let (synced, to_apply) = channel::<(u64, Instant)>();
        let (applied, applied_rx) = channel::<()>();
        let sequential = params.sequential;
        let spawn_failed = |what: &str, e: std::io::Error| ProbeError::Failed {
            probe: super::NAME.into(),
            message: format!("cannot start the {what} thread: {e}"),
        };
        let (committer, applier) = match params.backend() {
            Some(interval) => {
                let entry_bytes = params.block_size.0;
                let committer = std::thread::Builder::new()
                    .name("iq-fsync-backend".into())
                    .spawn_scoped(scope, move || {
                        backend::run(work, interval, entry_bytes, batch, finished)
                    })
                    .map_err(|e| spawn_failed("backend", e))?;
                let applier = std::thread::Builder::new()
                    .name("iq-fsync-apply".into())
                    .spawn_scoped(scope, move || {
                        let mut waits = LatencyHistogram::new();
                        for (puts, at) in to_apply {
                            waits.record(batch.apply(puts, at));
                            // The writer ends before the applier: a send
                            // cannot fail while it waits.
                            if sequential {
                                let _ = applied.send(());
                            }
                        }
                        waits
                    })
                    .map_err(|e| spawn_failed("apply", e))?;
                (Some(committer), Some(applier))
            }
            None => (None, None),
        };
        let apply = applier.is_some().then_some(Apply {
            synced: &synced,
            applied: sequential.then_some(&applied_rx),
        });
        let mut result = write_segments(params, work, cancel, rec, &rx, apply);
        // Dropping the receiver stops the pipeline, dropping `synced` the
        // applier and `done` the backend; join them before the work
        // directory is removed so none can create a file afterwards.
        drop(rx);
        drop(synced);
        let apply_waits = applier.map(|a| a.join());
        drop(done);
        let backend = committer.map(|c| {
            c.join().unwrap_or_else(|_| {
                Err(ProbeError::Failed {
                    probe: super::NAME.into(),
                    message: "the backend thread panicked".into(),
                })
            })
        });
        if pipeline.join().is_err() {
            return Err(ProbeError::Failed {
                probe: super::NAME.into(),
                message: "the segment thread panicked".into(),
            });
        }
        if let (Ok(outcome), Some(measured)) = (&mut result, backend) {
            let mut measured = measured?;
            measured.apply_waits = match apply_waits {
                Some(Ok(waits)) => waits,
                _ => {
                    return Err(ProbeError::Failed {
                        probe: super::NAME.into(),
                        message: "the apply thread panicked".into(),
                    })
                }
            };
            outcome.backend = Some(measured);
        }
        result
    })
}

/// The writer's ends of the apply: where synced batches go, and, for a
/// sequential client, where each batch's apply is reported done.
struct Apply<'a> {
    synced: &'a Sender<(u64, Instant)>,
    applied: Option<&'a Receiver<()>>,
}

fn write_segments(
    params: &Params,
    work: &DirHandle,
    cancel: &CancelToken,
    rec: &mut Recorder,
    rx: &Receiver<Result<PreparedSegment, ProbeError>>,
    apply: Option<Apply<'_>>,
) -> Result<Outcome, ProbeError> {
    let segment_bytes = params.segment_size.0;
    let block = params.block_size.0 as usize;
    let per_sync = u64::from(params.entries_per_sync);
    let entry = guard::random_bytes(block, 0x5eed_e7cd);
    let (file, path, prealloc) = segment::take_next(rx, work, 0, 0)?;
    let mut tail = Tail { file, path, seq: 0 };
    let mut pw = PageWriter::new();
    let mut rollover = LatencyHistogram::new();
    let mut cuts = 0u64;

    let mut entries_left = params.blocks();
    let mut index = 0u64;
    let mut stopped_by = StopReason::Size;
    rec.start();
    while entries_left > 0 {
        if let Some(reason) = rec.before_op(cancel)? {
            stopped_by = reason;
            break;
        }
        let batch = per_sync.min(entries_left);
        for _ in 0..batch {
            pw.write(&entry, &mut tail.file, &tail.path, rec)?;
        }
        pw.flush(&mut tail.file, &tail.path, rec)?;
        entries_left -= batch;
        index += batch;
        let synced = if pw.file_offset < segment_bytes {
            let t1 = Instant::now();
            tail.file
                .sync_data()
                .map_err(|e| ProbeError::io(&tail.path, e))?;
            let t2 = Instant::now();
            rec.record_sync(ns_between(t1, t2), t2);
            t2
        } else {
            let started = Instant::now();
            tail = cut(tail, &mut pw, work, index, rx, rec)?;
            let ended = Instant::now();
            rollover.record(ns_between(started, ended));
            cuts += 1;
            ended
        };
        if let Some(apply) = &apply {
            // The applier ends only after this writer: a send cannot fail.
            let _ = apply.synced.send((batch, synced));
            if let Some(applied) = apply.applied {
                applied.recv().map_err(|_| ProbeError::Failed {
                    probe: super::NAME.into(),
                    message: "the apply thread ended before the writer".into(),
                })?;
            }
        }
    }
    rec.finish();
    Ok(Outcome {
        stopped_by,
        prealloc,
        segments: cuts + 1,
        rollover: (cuts > 0).then_some(rollover),
        backend: None,
    })
}

/// etcd's wal.cut: truncate the full segment at its end, sync it (that sync
/// is one of the WAL's fdatasyncs), then switch to the prepared segment.
fn cut(
    tail: Tail,
    pw: &mut PageWriter,
    work: &DirHandle,
    index: u64,
    rx: &Receiver<Result<PreparedSegment, ProbeError>>,
    rec: &mut Recorder,
) -> Result<Tail, ProbeError> {
    tail.file
        .set_len(pw.file_offset)
        .map_err(|e| ProbeError::io(&tail.path, e))?;
    let t1 = Instant::now();
    tail.file
        .sync_data()
        .map_err(|e| ProbeError::io(&tail.path, e))?;
    let t2 = Instant::now();
    rec.record_sync(ns_between(t1, t2), t2);
    let seq = tail.seq + 1;
    let (file, path, _) = segment::take_next(rx, work, seq, index)?;
    pw.reset();
    Ok(Tail { file, path, seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recorder() -> Recorder {
        let mut r = Recorder::new(None, Duration::from_secs(60), false);
        r.start();
        r
    }

    #[test]
    fn small_entries_are_buffered_until_the_flush() {
        let mut rec = recorder();
        let mut out: Vec<u8> = Vec::new();
        let mut pw = PageWriter::new();
        let p = Path::new("mem");
        for _ in 0..3 {
            pw.write(&[7u8; 2300], &mut out, p, &mut rec).unwrap();
        }
        assert!(out.is_empty());
        pw.flush(&mut out, p, &mut rec).unwrap();
        assert_eq!(out.len(), 6900);
        assert_eq!((rec.writes, pw.file_offset), (1, 6900));
    }

    #[test]
    fn overflowing_the_watermark_flushes_on_a_page_boundary() {
        let mut rec = recorder();
        let mut out: Vec<u8> = Vec::new();
        let mut pw = PageWriter::new();
        let p = Path::new("mem");
        // Start mid-page, as after an earlier unaligned flush.
        pw.write(&[1u8; 1000], &mut out, p, &mut rec).unwrap();
        pw.flush(&mut out, p, &mut rec).unwrap();
        for _ in 0..200 {
            pw.write(&[2u8; 2300], &mut out, p, &mut rec).unwrap();
        }
        // Every flush forced by the watermark ends on a file page boundary.
        assert!(rec.writes >= 4);
        assert_eq!(out.len() % PAGE_BYTES, 0, "{}", out.len());
        pw.flush(&mut out, p, &mut rec).unwrap();
        assert_eq!(out.len(), 1000 + 200 * 2300);
        assert_eq!(pw.file_offset as usize, out.len());
    }

    #[test]
    fn large_entries_bypass_the_buffer_in_whole_pages() {
        let mut rec = recorder();
        let mut out: Vec<u8> = Vec::new();
        let mut pw = PageWriter::new();
        let p = Path::new("mem");
        pw.write(&[3u8; 300_000], &mut out, p, &mut rec).unwrap();
        pw.flush(&mut out, p, &mut rec).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out.iter().all(|b| *b == 3));
    }
}
