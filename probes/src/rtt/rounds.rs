//! Several rtt rounds as one result: histograms added per path and kind,
//! loss summed per path (its share over every exchange sent), the overlay
//! overhead and the p99 and loss verdicts derived again from the merged
//! histograms. The matched-block overhead (`overlay_overhead_matched`) is
//! per round (its blocks are not kept): each number is the median round's
//! and its verdict the worst round's.

use serde_json::{Map, Value};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::rounds::{merge_common, note_with, sum_fact, worst_of};

use super::{matched, summary};

const LOSS_COUNTS: &[&str] = &["sent", "received", "lost", "late", "duplicates", "errors"];

pub fn merge(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
    let verdicts: Vec<_> = rounds.iter().map(|r| r.verdicts.clone()).collect();
    let mut merged = merge_common(rounds)?;
    let loss = merged_loss(&merged);
    if !loss.is_empty() {
        merged.fact("loss", Value::Object(loss));
    }
    merged.facts.remove("overlay_overhead_us");
    let ctx = ProbeContext::new(&merged.node, profile.clone());
    summary::overlay_overhead(&mut merged, &ctx.node);
    summary::verdicts(&mut merged, &ctx);
    if let Some(worst) = worst_of(&verdicts, matched::CHECK) {
        let mut v = worst.clone();
        v.note = note_with(&v.note, &format!("worst of {} rounds", verdicts.len()));
        merged.verdicts.push(v);
    }
    Ok(merged)
}

/// `loss[<path>]` with each count summed over the rounds and `loss_pct`
/// from the sums.
fn merged_loss(merged: &ProbeResult) -> Map<String, Value> {
    let mut paths: Vec<String> = Vec::new();
    for round in &merged.rounds {
        if let Some(Value::Object(loss)) = round.facts.get("loss") {
            for path in loss.keys() {
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let entries: Vec<&Map<String, Value>> = merged
                .rounds
                .iter()
                .filter_map(|r| r.facts.get("loss")?.get(&path)?.as_object())
                .collect();
            let mut out = Map::new();
            for key in LOSS_COUNTS {
                if let Some(sum) = sum_fact(&entries, key) {
                    out.insert((*key).to_string(), sum);
                }
            }
            let count = |k: &str| out.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let (sent, lost) = (count("sent"), count("lost"));
            let pct = if sent > 0.0 { lost * 100.0 / sent } else { 0.0 };
            out.insert("loss_pct".into(), ((pct * 1000.0).round() / 1000.0).into());
            (path, Value::Object(out))
        })
        .collect()
}
