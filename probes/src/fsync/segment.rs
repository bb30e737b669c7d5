//! etcd's WAL file pipeline (server/storage/wal/file_pipeline.go): one
//! segment is always being prepared ahead, as `0.tmp` / `1.tmp`, created and
//! preallocated to the full segment size on a background thread, so a cut
//! only renames it. The hand-off is a rendezvous channel: the thread blocks
//! holding one ready file until the writer takes it or goes away.

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};

use crate::error::ProbeError;
use crate::system::dirfd::DirHandle;

use super::guard::{self, Prealloc};

/// A created, preallocated segment waiting for its final name.
#[derive(Debug)]
pub struct PreparedSegment {
    pub file: File,
    pub name: String,
    pub prealloc: Prealloc,
}

/// Runs on the pipeline thread until the receiver is dropped or an error.
/// A prepared file nobody took is removed here.
pub fn prepare_ahead(
    dir: &DirHandle,
    segment_bytes: u64,
    tx: SyncSender<Result<PreparedSegment, ProbeError>>,
) {
    for count in 0u64.. {
        let name = format!("{}.tmp", count % 2);
        let prepared = dir.create_file(&name).and_then(|file| {
            let prealloc = guard::preallocate(&file, &dir.path().join(&name), segment_bytes)?;
            Ok(PreparedSegment {
                file,
                name: name.clone(),
                prealloc,
            })
        });
        let failed = prepared.is_err();
        if let Err(unsent) = tx.send(prepared) {
            if let Ok(segment) = unsent.0 {
                drop(segment.file);
                let _ = dir.remove_file(OsStr::new(&segment.name));
            }
            return;
        }
        if failed {
            return;
        }
    }
}

/// Takes the next prepared segment and gives it its WAL name
/// (`<seq>-<index>.wal`, 16 hex digits each), then syncs the directory.
pub fn take_next(
    rx: &Receiver<Result<PreparedSegment, ProbeError>>,
    dir: &DirHandle,
    seq: u64,
    index: u64,
) -> Result<(File, PathBuf, Prealloc), ProbeError> {
    let prepared = rx.recv().map_err(|_| ProbeError::Failed {
        probe: super::NAME.into(),
        message: "the WAL segment pipeline stopped".into(),
    })??;
    let name = format!("{seq:016x}-{index:016x}.wal");
    dir.rename(&prepared.name, &name)?;
    dir.sync()?;
    Ok((prepared.file, dir.path().join(name), prepared.prealloc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn pipeline_prepares_ahead_and_cleans_up_the_unused_segment() {
        let dir = tempfile::tempdir().unwrap();
        let handle = DirHandle::open(dir.path()).unwrap();
        let (tx, rx) = sync_channel(0);
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| prepare_ahead(&handle, 1 << 20, tx));
            let (file, name, _) = take_next(&rx, &handle, 0, 0).unwrap();
            assert_eq!(file.metadata().unwrap().len(), 1 << 20);
            assert!(name.ends_with("0000000000000000-0000000000000000.wal"));
            let (_, second, _) = take_next(&rx, &handle, 1, 42).unwrap();
            assert!(second.ends_with("0000000000000001-000000000000002a.wal"));
            drop(rx);
            worker.join().unwrap();
        });
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "0000000000000000-0000000000000000.wal",
                "0000000000000001-000000000000002a.wal"
            ],
            "the prepared-but-unused tmp segment is removed"
        );
    }
}
