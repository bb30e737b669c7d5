//! etcd's backend beside its WAL (mode etcd-wal): etcd applies every
//! committed put to bbolt and commits bbolt's batch every
//! `--backend-batch-interval` (100 ms by default) when puts are pending, on
//! the same disk as the WAL. A bbolt commit writes the dirty pages, one
//! pwrite per page, fdatasyncs the file, then writes the meta page and
//! fdatasyncs again. A WAL sync that lands behind those syncs waits for
//! them, which is what etcd's WAL fsync p99 sees.
//!
//! Pages per commit, from bbolt's layout: etcd's key bucket is keyed by
//! revision, which only grows, so the puts since the last commit fill leaf
//! pages at the end of the tree: ceil(puts x entry bytes / 4096) of them.
//! Each commit also rewrites the branch page above those leaves, the leaf
//! holding etcd's `meta` bucket (the consistent index is updated on every
//! apply) and bbolt's freelist page: 3 more.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;
use crate::system::dirfd::DirHandle;

use super::recorder::ns_between;

/// bbolt's page size (the OS page size on Linux x86-64 and arm64).
pub const BBOLT_PAGE_BYTES: u64 = 4096;
/// etcd's `--backend-batch-interval` default.
pub const ETCD_BACKEND_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Pages every commit rewrites besides the new leaves: the branch above
/// them, the `meta` bucket's leaf, the freelist.
pub const PAGES_PER_COMMIT_BESIDES_LEAVES: u64 = 3;
/// bbolt's DefaultAllocSize: the file grows in steps of this, each growth
/// followed by an fsync.
const GROW_BYTES: u64 = 16 << 20;
/// The two meta pages at the start of a bbolt file.
const META_PAGES: u64 = 2;
/// The backend's file inside the probe's work directory.
pub const FILE_NAME: &str = "backend.db";

/// What the backend writer measured.
#[derive(Debug)]
pub struct Measured {
    /// Each commit from its first page write to the end of its second
    /// fdatasync, as etcd's `etcd_disk_backend_commit_duration_seconds`.
    pub commits: LatencyHistogram,
    pub pages: u64,
    /// Each synced batch's wait to be applied: from the end of its WAL
    /// fdatasync until the batch lock was free. etcd applies a committed put
    /// under the backend's batch lock, which a commit holds while bbolt
    /// writes and syncs, so this is the wait a put's apply sees. On a disk
    /// that serves one sync at a time it is shorter than the commit: the
    /// part of a commit queued behind the batch's own WAL sync is over by
    /// the time the batch is ready to apply.
    pub apply_waits: LatencyHistogram,
}

/// The backend's batch: puts applied and not yet committed, behind the lock
/// a commit holds (etcd's batchTx lock).
#[derive(Debug, Default)]
pub struct Batch {
    applied: Mutex<u64>,
}

impl Batch {
    /// Applies `puts` the WAL synced at `synced`, waiting for a commit in
    /// progress; returns how long the apply waited.
    pub fn apply(&self, puts: u64, synced: Instant) -> u64 {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        *applied += puts;
        ns_between(synced, Instant::now())
    }
}

/// Leaf pages the `puts` of one batch fill, plus the pages every commit
/// rewrites.
pub fn pages_for(puts: u64, entry_bytes: u64) -> u64 {
    (puts * entry_bytes).div_ceil(BBOLT_PAGE_BYTES) + PAGES_PER_COMMIT_BESIDES_LEAVES
}

/// Commits the puts applied to `batch` since the last commit, an `interval`
/// after the last commit ended, holding its lock while it writes and syncs,
/// until the WAL writer drops its end of `done`.
pub fn run(
    work: &DirHandle,
    interval: Duration,
    entry_bytes: u64,
    batch: &Batch,
    done: Receiver<()>,
) -> Result<Measured, ProbeError> {
    let path = work.path().join(FILE_NAME);
    let file = work.create_file(FILE_NAME)?;
    let mut db = Db {
        file,
        path,
        high_water: META_PAGES,
        file_pages: 0,
        txid: 0,
    };
    let page = vec![0x5au8; BBOLT_PAGE_BYTES as usize];
    let mut measured = Measured {
        commits: LatencyHistogram::new(),
        pages: 0,
        apply_waits: LatencyHistogram::new(),
    };
    let mut committed = 0u64;
    loop {
        // etcd's backend.run resets its timer after each commit: the next
        // commit is due an interval after this one ended, so a slow commit
        // spaces the commits out rather than running them back to back.
        match done.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            // The WAL writer finished (or failed): no more puts.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(measured),
        }
        let applied = batch.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let puts = *applied - committed;
        // etcd commits only when the batch holds something.
        if puts == 0 {
            continue;
        }
        committed = *applied;
        let pages = pages_for(puts, entry_bytes);
        let started = Instant::now();
        db.commit(pages, &page)?;
        measured.commits.record(ns_between(started, Instant::now()));
        drop(applied);
        measured.pages += pages;
    }
}

struct Db {
    file: File,
    path: PathBuf,
    /// Next unallocated page: a fresh database's freelist is empty, so bbolt
    /// allocates new pages at the end.
    high_water: u64,
    file_pages: u64,
    txid: u64,
}

impl Db {
    /// bbolt's tx.Commit: grow the file if the pages do not fit, write each
    /// dirty page, fdatasync, write the meta page, fdatasync.
    fn commit(&mut self, pages: u64, page: &[u8]) -> Result<(), ProbeError> {
        let io = |e| ProbeError::io(&self.path, e);
        let end = self.high_water + pages;
        if end > self.file_pages {
            let grown = (end * BBOLT_PAGE_BYTES).div_ceil(GROW_BYTES) * GROW_BYTES;
            self.file.set_len(grown).map_err(io)?;
            self.file.sync_all().map_err(io)?;
            self.file_pages = grown / BBOLT_PAGE_BYTES;
        }
        for id in self.high_water..end {
            self.file
                .write_all_at(page, id * BBOLT_PAGE_BYTES)
                .map_err(io)?;
        }
        self.high_water = end;
        self.file.sync_data().map_err(io)?;
        // bbolt alternates between its two meta pages.
        let meta = self.txid % META_PAGES;
        self.file
            .write_all_at(page, meta * BBOLT_PAGE_BYTES)
            .map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.txid += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn pages_are_the_leaves_the_puts_fill_plus_three() {
        assert_eq!(pages_for(1, 2767), 1 + 3);
        // 15 puts of 2767 bytes: 41,505 bytes fill 11 pages (10.13).
        assert_eq!(pages_for(15, 2767), 11 + 3);
        assert_eq!(pages_for(4096, 1), 1 + 3);
    }

    #[test]
    fn commits_only_what_was_applied_and_stops_with_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let work = DirHandle::open(dir.path()).unwrap();
        let batch = Batch::default();
        let (tx, rx) = sync_channel::<()>(0);
        let measured = std::thread::scope(|s| {
            let backend = s.spawn(|| run(&work, Duration::from_millis(5), 2767, &batch, rx));
            // Nothing applied: no commit.
            std::thread::sleep(Duration::from_millis(30));
            batch.apply(15, Instant::now());
            std::thread::sleep(Duration::from_millis(30));
            drop(tx);
            backend.join().unwrap().unwrap()
        });
        assert_eq!(measured.commits.len(), 1, "one batch of 15 puts");
        assert_eq!(measured.pages, 14);
        let len = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert_eq!(len, GROW_BYTES, "grown in bbolt's 16 MiB steps");
    }

    #[test]
    fn an_apply_waits_for_the_commit_holding_the_batch() {
        let batch = Batch::default();
        let held = batch.applied.lock().unwrap();
        std::thread::scope(|s| {
            let apply = s.spawn(|| batch.apply(1, Instant::now()));
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            let waited = apply.join().unwrap();
            assert!(waited >= 45_000_000, "{waited}");
        });
        assert!(batch.apply(1, Instant::now()) < 45_000_000);
        assert_eq!(*batch.applied.lock().unwrap(), 2);
    }
}
