//! etcd's WAL file pipeline (server/storage/wal/file_pipeline.go): one
//! segment is always being prepared ahead, as `0.tmp` / `1.tmp`, created and
//! preallocated to the full segment size on a background thread, so a cut
//! only renames it. The hand-off is a rendezvous channel: the thread blocks
//! holding one ready file until the writer takes it or goes away.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::error::ProbeError;

use super::guard::{self, Prealloc};

/// A created, preallocated segment waiting for its final name.
#[derive(Debug)]
pub struct PreparedSegment {
    pub file: File,
    pub path: PathBuf,
    pub prealloc: Prealloc,
}

/// Runs on the pipeline thread until the receiver is dropped or an error.
/// A prepared file nobody took is removed here.
pub fn prepare_ahead(
    dir: &Path,
    segment_bytes: u64,
    tx: SyncSender<Result<PreparedSegment, ProbeError>>,
) {
    for count in 0u64.. {
        let path = dir.join(format!("{}.tmp", count % 2));
        let prepared = guard::create_file(&path).and_then(|file| {
            let prealloc = guard::preallocate(&file, &path, segment_bytes)?;
            Ok(PreparedSegment {
                file,
                path: path.clone(),
                prealloc,
            })
        });
        let failed = prepared.is_err();
        if let Err(unsent) = tx.send(prepared) {
            if let Ok(segment) = unsent.0 {
                drop(segment.file);
                let _ = std::fs::remove_file(&segment.path);
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
    dir: &Path,
    seq: u64,
    index: u64,
) -> Result<(File, PathBuf, Prealloc), ProbeError> {
    let prepared = rx.recv().map_err(|_| ProbeError::Failed {
        probe: super::NAME.into(),
        message: "the WAL segment pipeline stopped".into(),
    })??;
    let name = dir.join(format!("{seq:016x}-{index:016x}.wal"));
    std::fs::rename(&prepared.path, &name).map_err(|e| ProbeError::io(&prepared.path, e))?;
    guard::sync_dir(dir)?;
    Ok((prepared.file, name, prepared.prealloc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn pipeline_prepares_ahead_and_cleans_up_the_unused_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = sync_channel(0);
        let d = dir.path().to_path_buf();
        let worker = std::thread::spawn(move || prepare_ahead(&d, 1 << 20, tx));
        let (file, name, _) = take_next(&rx, dir.path(), 0, 0).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 1 << 20);
        assert!(name.ends_with("0000000000000000-0000000000000000.wal"));
        let (_, second, _) = take_next(&rx, dir.path(), 1, 42).unwrap();
        assert!(second.ends_with("0000000000000001-000000000000002a.wal"));
        drop(rx);
        worker.join().unwrap();
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
