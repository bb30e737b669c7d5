//! Several fsync rounds as one result: the histograms added, the counts
//! summed, syncs per second over all the rounds' measured time, and the
//! p99 verdict judged on the merged histogram (each sync as it took, where
//! paced).

use serde_json::{Map, Value};

use crate::error::ProbeError;
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::rounds::{merge_common, sum_fact};

use super::{judge, round2};

/// Facts that count what a round did: the merge sums them.
const SUMMED: &[&str] = &[
    "syncs",
    "writes",
    "bytes_written",
    "measured_ms",
    "paced_late_ops",
    "segments",
    "backend_commits",
    "backend_pages_written",
];

pub fn merge(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
    let first_free = rounds
        .first()
        .and_then(|r| r.facts.get("free_bytes_before").cloned());
    let mut merged = merge_common(rounds)?;
    let facts: Vec<&Map<String, Value>> = merged.rounds.iter().map(|r| &r.facts).collect();
    let mut derived = Map::new();
    for key in SUMMED {
        if let Some(sum) = sum_fact(&facts, key) {
            derived.insert((*key).to_string(), sum);
        }
    }
    let syncs = derived.get("syncs").and_then(Value::as_f64).unwrap_or(0.0);
    let measured_s = derived
        .get("measured_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1000.0;
    let syncs_per_sec = if measured_s > 0.0 {
        syncs / measured_s
    } else {
        0.0
    };
    derived.insert("syncs_per_sec".into(), round2(syncs_per_sec).into());
    if let Some(free) = first_free {
        derived.insert("free_bytes_before".into(), free);
    }
    merged.facts.extend(derived);
    let p99 = merged
        .metrics
        .get(super::JUDGED_PACED_METRIC)
        .or_else(|| merged.metrics.get("fdatasync"))
        .map_or(0, |m| m.p99);
    let paced = merged.params.get("rate").is_some_and(|r| !r.is_null());
    judge(&mut merged, profile, p99, syncs_per_sec, paced);
    Ok(merged)
}
