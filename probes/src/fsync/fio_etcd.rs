//! Mode fio-etcd: what `fio --rw=write --ioengine=sync --fdatasync=1
//! --size=22m --bs=2300` does, so the two read the same. fio lays the file
//! out first (create, fallocate(mode 0) to the full size), then issues
//! sequential write(2) calls of whole blocks, each followed by fdatasync(2).

use std::io::Write;
use std::time::Instant;

use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::system::dirfd::DirHandle;

use super::guard;
use super::params::Params;
use super::recorder::{ns_between, Outcome, Recorder, StopReason};

pub fn run(
    params: &Params,
    work: &DirHandle,
    cancel: &CancelToken,
    rec: &mut Recorder,
) -> Result<Outcome, ProbeError> {
    let name = "fio-etcd.0";
    let path = work.path().join(name);
    let blocks = params.blocks();
    let block = params.block_size.0 as usize;
    let mut file = work.create_file(name)?;
    let prealloc = guard::preallocate(&file, &path, blocks * block as u64)?;
    let buf = guard::random_bytes(block, 0x5eed_f10e);

    rec.start();
    let mut stopped_by = StopReason::Size;
    for _ in 0..blocks {
        if let Some(reason) = rec.before_op(cancel)? {
            stopped_by = reason;
            break;
        }
        let t0 = Instant::now();
        file.write_all(&buf).map_err(|e| ProbeError::io(&path, e))?;
        let t1 = Instant::now();
        file.sync_data().map_err(|e| ProbeError::io(&path, e))?;
        let t2 = Instant::now();
        rec.record_write(ns_between(t0, t1), block);
        rec.record_sync(ns_between(t1, t2), t2);
    }
    rec.finish();
    Ok(Outcome {
        stopped_by,
        prealloc,
        segments: 1,
        rollover: None,
        backend: None,
    })
}
