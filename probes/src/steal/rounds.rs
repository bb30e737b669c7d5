//! Several steal rounds as one result. Each share is a fraction of measured
//! time, so the merged share is each round's share weighted by its
//! measured seconds: exactly the share over all the rounds' time. Counts
//! add up; the hiccup percentiles are read from the merged hiccup
//! histogram; per CPU, shares are weighted the same way, counts summed, and
//! the per-CPU hiccup p99.9 and maximum are the worst round's (only the
//! all-CPU histogram is recorded).

use serde_json::{Map, Value};

use crate::error::ProbeError;
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::rounds::{merge_common, sum_fact, weighted_mean_fact};

use super::report::{judge, round, StealCounter};

const SHARES: &[&str] = &[
    "steal_pct",
    "lost_pct",
    "guest_wait_pct",
    "throttled_pct",
    "unexplained_pct",
    "irq_pct",
    "steal_pct_machine",
];
const COUNTS: &[&str] = &["preemptions", "hiccups", "clock_reads"];
const WEIGHT: &str = "measured_seconds";

pub fn merge(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
    let mut merged = merge_common(rounds)?;
    let facts: Vec<&Map<String, Value>> = merged.rounds.iter().map(|r| &r.facts).collect();
    let mut derived = Map::new();
    let seconds = sum_fact(&facts, WEIGHT);
    derive_shares_and_counts(&facts, &mut derived);
    if let Some(hiccup) = merged.metrics.get("hiccup") {
        derived.insert("hiccup_p999_ns".into(), hiccup.p999.into());
        derived.insert("hiccup_max_ns".into(), hiccup.max.into());
    }
    derived.insert("per_cpu".into(), Value::Object(merge_per_cpu(&facts)));
    if let Some(s) = seconds.and_then(|s| s.as_f64()) {
        derived.insert(WEIGHT.into(), round(s).into());
    }
    merged.facts.extend(derived);

    let share = |key: &str| merged.facts.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let (steal, unexplained) = (share("steal_pct"), share("unexplained_pct"));
    let counter = StealCounter::from_label(
        merged
            .facts
            .get("steal_counter")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    judge(&mut merged, steal, unexplained, &counter, profile);
    Ok(merged)
}

/// Shares weighted by each round's measured seconds, counts summed.
fn derive_shares_and_counts(facts: &[&Map<String, Value>], out: &mut Map<String, Value>) {
    for key in SHARES {
        if let Some(v) = weighted_mean_fact(facts, key, WEIGHT) {
            out.insert((*key).to_string(), round(v).into());
        }
    }
    for key in COUNTS {
        if let Some(v) = sum_fact(facts, key) {
            out.insert((*key).to_string(), v);
        }
    }
}

fn merge_per_cpu(rounds: &[&Map<String, Value>]) -> Map<String, Value> {
    let mut cpus: Vec<String> = Vec::new();
    for facts in rounds {
        if let Some(Value::Object(per_cpu)) = facts.get("per_cpu") {
            for cpu in per_cpu.keys() {
                if !cpus.contains(cpu) {
                    cpus.push(cpu.clone());
                }
            }
        }
    }
    cpus.into_iter()
        .map(|cpu| {
            // Each round's entry for this CPU, with its round's seconds
            // (a per-CPU entry has none of its own).
            let entries: Vec<Map<String, Value>> = rounds
                .iter()
                .filter_map(|facts| {
                    let mut entry = facts.get("per_cpu")?.get(&cpu)?.as_object()?.clone();
                    entry.insert(WEIGHT.into(), facts.get(WEIGHT)?.clone());
                    Some(entry)
                })
                .collect();
            let refs: Vec<&Map<String, Value>> = entries.iter().collect();
            let mut merged = crate::rounds::merge_facts(&refs);
            derive_shares_and_counts(&refs, &mut merged);
            let worst = |key: &str| refs.iter().filter_map(|e| e.get(key)?.as_u64()).max();
            let finest = refs.iter().filter_map(|e| e.get("loop_step_ns")?.as_u64()).min();
            for (key, value) in [
                ("hiccup_p999_ns", worst("hiccup_p999_ns")),
                ("hiccup_max_ns", worst("hiccup_max_ns")),
                ("loop_step_ns", finest),
            ] {
                if let Some(v) = value {
                    merged.insert(key.into(), v.into());
                }
            }
            merged.remove(WEIGHT);
            (cpu, Value::Object(merged))
        })
        .collect()
}
