//! The etcd prediction in `compare`: one summary line per run that has one,
//! so two runs' best placements and commit latencies stand side by side.

use super::{predict, Options};
use crate::bundle::RunRecord;
use crate::format;

/// `etcd (predicted put commit, best placement) in A: a,b,c led by b, p50
/// 2.1 ms, p99 9.8 ms`, for each run whose fsync and rtt results allow a
/// prediction.
pub fn summary_lines(runs: &[(&str, &RunRecord)]) -> Vec<String> {
    runs.iter()
        .filter_map(|(label, run)| {
            let p = predict(run, None, &run.profile, Options::default()).ok()?;
            let best = p.best();
            let lead = best.best_leader();
            Some(format!(
                "etcd (predicted put commit, best placement) in {label}: {} led by {}, p50 {}, p99 {}",
                best.members.join(","),
                lead.leader,
                format::duration_ns(lead.p50_ns as f64),
                format::duration_ns(lead.p99_ns as f64)
            ))
        })
        .collect()
}
