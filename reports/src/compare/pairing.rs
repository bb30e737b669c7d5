//! Which measurements of run A and run B are the same thing: latency
//! metrics by (probe, node, metric key) and numeric facts of known meaning.
//! The metric key carries node pair, path, mode and count where a probe has
//! them (`a->b/native/udp`, `nftables/1000/end`).

use std::collections::BTreeMap;

use infraqual_probes::probe::{Better, JudgedFact};
use infraqual_probes::{MetricSummary, ProbeName, ProbeResult};
use serde_json::Value;

use crate::bundle::RunRecord;

/// How nodes were matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMatch {
    /// Nodes of the same name are paired.
    ByName,
    /// Each run has one node and the names differ (an NVMe node against a
    /// SATA node): everything is paired by probe and metric.
    SingleNodes { a: String, b: String },
}

impl NodeMatch {
    pub fn of(a: &RunRecord, b: &RunRecord) -> Self {
        match (a.nodes.as_slice(), b.nodes.as_slice()) {
            ([na], [nb]) if na.name != nb.name => NodeMatch::SingleNodes {
                a: na.name.clone(),
                b: nb.name.clone(),
            },
            _ => NodeMatch::ByName,
        }
    }

    /// The subject a node's measurements are filed under.
    fn subject(&self, node: &str) -> String {
        match self {
            NodeMatch::ByName => node.to_string(),
            NodeMatch::SingleNodes { a, b } => format!("{a} vs {b}"),
        }
    }

    pub fn note(&self) -> Option<String> {
        match self {
            NodeMatch::ByName => None,
            NodeMatch::SingleNodes { a, b } => Some(format!(
                "the runs have one node each with different names ({a} in A, {b} in B): \
                 measurements are paired by probe and metric"
            )),
        }
    }
}

/// (probe, subject, metric): the identity of one measurement.
pub type Key = (ProbeName, String, String);

/// A metric of one run: the whole run's summary and, when the probe ran
/// several rounds, each round's (the rounds that recorded it, in order).
pub struct RunMetric<'a> {
    pub merged: &'a MetricSummary,
    pub rounds: Vec<&'a MetricSummary>,
}

pub struct MetricPair<'a> {
    pub key: Key,
    pub a: RunMetric<'a>,
    pub b: RunMetric<'a>,
}

pub struct ScalarPair {
    pub key: Key,
    pub unit: &'static str,
    pub better: Better,
    pub a: f64,
    pub b: f64,
}

fn metrics_of<'a>(run: &'a RunRecord, m: &NodeMatch) -> BTreeMap<Key, RunMetric<'a>> {
    let mut out = BTreeMap::new();
    for (node, r) in run.results() {
        for (name, summary) in &r.metrics {
            if summary.count == 0 {
                continue;
            }
            let key = (r.probe, m.subject(&node.name), name.clone());
            out.entry(key).or_insert_with(|| RunMetric {
                merged: summary,
                rounds: r
                    .rounds
                    .iter()
                    .filter_map(|round| round.metrics.get(name))
                    .filter(|s| s.count > 0 && s.unit == summary.unit)
                    .collect(),
            });
        }
    }
    out
}

fn scalars_of(run: &RunRecord, m: &NodeMatch) -> BTreeMap<Key, (f64, &'static JudgedFact)> {
    let mut out = BTreeMap::new();
    for (node, r) in run.results() {
        for known in r.probe.descriptor().judged_facts {
            for (name, value) in known_values(r, known) {
                let key = (r.probe, m.subject(&node.name), name);
                out.entry(key).or_insert((value, known));
            }
        }
    }
    out
}

fn known_values(r: &ProbeResult, known: &JudgedFact) -> Vec<(String, f64)> {
    match (r.facts.get(known.fact), known.keyed) {
        (Some(Value::Object(map)), true) => map
            .iter()
            .filter_map(|(k, v)| Some((format!("{}[{k}]", known.fact), v.as_f64()?)))
            .collect(),
        (Some(v), false) => v
            .as_f64()
            .map(|x| vec![(known.fact.to_string(), x)])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Everything the runs share, and what only one of them has.
pub struct Paired<'a> {
    pub metrics: Vec<MetricPair<'a>>,
    pub scalars: Vec<ScalarPair>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

pub fn pair<'a>(a: &'a RunRecord, b: &'a RunRecord, m: &NodeMatch) -> Paired<'a> {
    let (ma, mb) = (metrics_of(a, m), metrics_of(b, m));
    let (sa, sb) = (scalars_of(a, m), scalars_of(b, m));
    let name = |k: &Key| format!("{} {} ({})", k.0, k.2, k.1);
    let mut paired = Paired {
        metrics: Vec::new(),
        scalars: Vec::new(),
        only_a: Vec::new(),
        only_b: Vec::new(),
    };
    paired
        .only_b
        .extend(mb.keys().filter(|k| !ma.contains_key(*k)).map(name));
    let mut mb = mb;
    for (key, a_metric) in ma {
        match mb.remove(&key) {
            Some(b_metric) if b_metric.merged.unit == a_metric.merged.unit => {
                paired.metrics.push(MetricPair {
                    key,
                    a: a_metric,
                    b: b_metric,
                })
            }
            _ => paired.only_a.push(name(&key)),
        }
    }
    for (key, (va, known)) in &sa {
        match sb.get(key) {
            Some((vb, _)) => paired.scalars.push(ScalarPair {
                key: key.clone(),
                unit: known.unit,
                better: known.better,
                a: *va,
                b: *vb,
            }),
            None => paired.only_a.push(name(key)),
        }
    }
    paired
        .only_b
        .extend(sb.keys().filter(|k| !sa.contains_key(*k)).map(name));
    paired
}
