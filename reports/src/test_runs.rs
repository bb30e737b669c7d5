//! Runs built from synthetic histograms for the crate's unit tests: the
//! logic, not the measurement.

use std::collections::BTreeMap;

use infraqual_probes::{LatencyHistogram, ProbeResult, Profile};
use serde_json::Value;

use crate::bundle::{NodeRecord, RunRecord, RunVerdict};
use crate::compare::sampler::SplitMix64;

/// `n` samples around `center` ns with a deterministic spread.
pub fn hist(center: f64, n: u64, salt: u64) -> LatencyHistogram {
    let mut rng = SplitMix64::new(salt);
    let mut h = LatencyHistogram::new();
    for _ in 0..n {
        let z: f64 = (0..6).map(|_| rng.next_f64()).sum::<f64>() - 3.0;
        h.record((center * (0.25 * z).exp()) as u64);
    }
    h
}

pub fn node(name: &str, labels: &[(&str, &str)], results: Vec<ProbeResult>) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        inventory: None,
        results,
        errors: Vec::new(),
    }
}

pub fn run(id: &str, nodes: Vec<NodeRecord>) -> RunRecord {
    RunRecord {
        schema_version: 1,
        run_id: id.into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: Some("2026-01-01T00:01:00Z".into()),
        tool_version: "test".into(),
        plan: Value::Null,
        profile: Profile::default(),
        nodes,
        verdict: RunVerdict::Pass,
    }
}
