//! The community reference beside a judged etcd-wal run: fio's etcd recipe
//! (one write, one fdatasync, back to back) on the same directory right
//! after, so a reader who knows the recipe's figure finds it next to the
//! figure that predicts etcd. It is recorded, never judged.

use serde_json::json;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::result::ProbeResult;
use crate::system::dirfd::DirHandle;

use super::params::{Mode, Params, ETCD_SEGMENT_BYTES};
use super::recorder::Recorder;
use crate::units::ByteSize;

/// The recipe's fdatasync histogram, beside the judged `fdatasync`.
pub const METRIC: &str = "fio_recipe_fdatasync";
/// Its summary in the facts: `{ mean_ns, p50_ns, p99_ns, syncs, syncs_per_sec }`.
pub const FACT: &str = "fio_recipe";

/// Why the two figures differ, measured by `scripts/bench-fsync-vs-etcd`.
pub const WHY: &str = "fio's recipe syncs back to back; etcd syncs once per request batch at \
                       its request rate, and where a sync after an idle gap costs more, the \
                       recipe under-predicts etcd's own WAL fsync";

/// The recipe pass: the same directory, size and block size, back to back.
pub fn recipe_params(params: &Params) -> Params {
    Params {
        mode: Mode::FioEtcd,
        rate: None,
        duration: None,
        entries_per_sync: 1,
        segment_size: ByteSize(ETCD_SEGMENT_BYTES),
        fio_reference: false,
        backend_interval: None,
        sequential: false,
        start_at: None,
        ..params.clone()
    }
}

/// Runs the recipe in a fresh work directory (removed before returning) and
/// adds its histogram and summary to `result`.
pub fn measure_and_add(
    params: &Params,
    handle: &DirHandle,
    ctx: &ProbeContext,
    result: &mut ProbeResult,
) -> Result<(), ProbeError> {
    let recipe = recipe_params(params);
    let work = super::guard::WorkDir::create(handle)?;
    let measured = super::measure(&recipe, work.dir(), ctx);
    let removal = work.remove();
    let (rec, _) = measured?;
    if let Err(e) = removal {
        result.warn(format!("could not remove the fio recipe's files: {e}"));
    }
    add(result, &rec)
}

fn add(result: &mut ProbeResult, rec: &Recorder) -> Result<(), ProbeError> {
    result.metric(METRIC, &rec.fdatasync, "ns")?;
    let h = &rec.fdatasync;
    result.fact(
        FACT,
        json!({
            "mean_ns": h.mean().round(),
            "p50_ns": h.value_at_quantile(0.50),
            "p99_ns": h.value_at_quantile(0.99),
            "syncs": rec.syncs,
            "syncs_per_sec": super::round2(rec.syncs_per_sec()),
            "note": WHY,
        }),
    );
    Ok(())
}
