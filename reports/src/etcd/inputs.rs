//! What the commit model reads from a run: each node's fdatasync histogram
//! (the fsync probe, etcd-wal mode preferred) and each node pair's round
//! trip (the rtt probe, both directions merged), with the missing pieces
//! named.

use std::collections::BTreeMap;

use infraqual_probes::rtt::key::RttMetricKey;
use infraqual_probes::rtt::Kind;
use infraqual_probes::{LatencyHistogram, MetricSummary};

use super::EtcdInputError;
use crate::bundle::RunRecord;
use crate::regions::kind_label;

/// The fsync probe's mode that emulates etcd's WAL (batched entries into
/// preallocated segments); fio's recipe is the fallback.
const WAL_MODE: &str = "etcd-wal";
const SYNC_METRIC: &str = "fdatasync";
/// A paced fsync run's syncs as each took, without the back-fill of
/// coordinated-omission correction: a put pays the one sync its entry
/// rides on, never the ones a stalled fixed-rate sender would have made,
/// and etcd's own WAL fsync histogram has no back-fill either.
const SYNC_EACH_METRIC: &str = infraqual_probes::fsync::JUDGED_PACED_METRIC;
/// The etcd-wal mode's bbolt-style commits, every backend interval.
const BACKEND_COMMIT_METRIC: &str = "backend_commit";
const BACKEND_APPLY_WAIT_METRIC: &str = infraqual_probes::fsync::BACKEND_APPLY_WAIT_METRIC;
/// The path etcd's peers talk over: members use the nodes' own addresses.
const NATIVE_PATH: &str = "native";

/// One node's fdatasync distribution and which fsync mode measured it.
#[derive(Clone, Debug)]
pub struct NodeSync {
    pub hist: LatencyHistogram,
    pub mode: String,
    /// Its etcd-wal runs' backend commits (`backend_commit`), where the
    /// probe ran etcd's backend beside the WAL.
    pub backend_commit: Option<LatencyHistogram>,
    /// And each synced batch's wait for the backend's batch lock
    /// (`backend_apply_wait`): the stall the model draws for a leader.
    pub backend_apply_wait: Option<LatencyHistogram>,
    /// Whether those waits were timed for one client sending its puts in
    /// turn (the probe's `sequential`) rather than an open schedule.
    pub sequential: bool,
}

/// Which rtt measurements stand for a member-to-member round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttBasis {
    pub path: String,
    pub kind: Kind,
}

impl RttBasis {
    pub fn describe(&self) -> String {
        format!("{} path, {}", self.path, kind_label(self.kind))
    }
}

/// Everything the model needs, read once from a run.
#[derive(Clone, Debug)]
pub struct ModelInputs {
    /// Nodes with an fdatasync histogram, by name.
    pub sync: BTreeMap<String, NodeSync>,
    /// Round trip per unordered node pair (smaller name first), both
    /// directions merged.
    pub rtt: BTreeMap<(String, String), LatencyHistogram>,
    pub basis: RttBasis,
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl ModelInputs {
    pub fn read(run: &RunRecord) -> Result<Self, EtcdInputError> {
        let sync = fsync_per_node(run);
        if sync.is_empty() {
            return Err(EtcdInputError::NoFsync);
        }
        let keys = rtt_metrics(run);
        let Some(basis) = choose_basis(&keys) else {
            return Err(EtcdInputError::NoRtt);
        };
        let mut rtt: BTreeMap<(String, String), LatencyHistogram> = BTreeMap::new();
        for (key, summary) in keys {
            if key.path != basis.path || key.kind != basis.kind || key.source == key.target {
                continue;
            }
            let Ok(hist) = summary.histogram() else {
                continue;
            };
            let entry = rtt.entry(pair(&key.source, &key.target)).or_default();
            // A histogram of another precision is left out rather than
            // failing the prediction.
            let _ = entry.merge(&hist);
        }
        rtt.retain(|_, h| !h.is_empty());
        Ok(ModelInputs { sync, rtt, basis })
    }

    pub fn round_trip(&self, a: &str, b: &str) -> Option<&LatencyHistogram> {
        self.rtt.get(&pair(a, b))
    }

    /// Nodes that have both an fdatasync histogram and a round trip to at
    /// least one other node: the candidates for members.
    pub fn measured_nodes(&self) -> Vec<String> {
        self.sync
            .keys()
            .filter(|n| self.rtt.keys().any(|(a, b)| (a == *n || b == *n) && a != b))
            .cloned()
            .collect()
    }
}

/// One node's histograms as read: etcd-wal's syncs, fio-etcd's, and
/// etcd-wal's backend commits and apply waits.
#[derive(Default)]
struct NodeHistograms {
    wal: Option<LatencyHistogram>,
    other: Option<LatencyHistogram>,
    backend: Option<LatencyHistogram>,
    apply_wait: Option<LatencyHistogram>,
    sequential: bool,
}

/// Adds `hist` into `slot`; a histogram of another precision is left out
/// rather than failing the prediction.
fn merge_into(slot: &mut Option<LatencyHistogram>, hist: LatencyHistogram) {
    match slot {
        Some(h) => {
            let _ = h.merge(&hist);
        }
        None => *slot = Some(hist),
    }
}

/// Per node: the etcd-wal fdatasync histograms merged (each sync as it took
/// where the run was paced); fio-etcd's only where the node has no etcd-wal
/// result. Beside them the etcd-wal runs' backend commits, where recorded.
fn fsync_per_node(run: &RunRecord) -> BTreeMap<String, NodeSync> {
    let mut per_node: BTreeMap<String, NodeHistograms> = BTreeMap::new();
    for (node, r) in run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::fsync::NAME)
    {
        let Some(summary) = r
            .metrics
            .get(SYNC_EACH_METRIC)
            .or_else(|| r.metrics.get(SYNC_METRIC))
        else {
            continue;
        };
        let Ok(hist) = summary.histogram() else {
            continue;
        };
        let wal = r.params.get("mode").and_then(|m| m.as_str()) == Some(WAL_MODE);
        let slots = per_node.entry(node.name.clone()).or_default();
        if wal {
            merge_into(&mut slots.wal, hist);
            slots.sequential |= r.params.get("sequential").and_then(|v| v.as_bool()) == Some(true);
            for (metric, slot) in [
                (BACKEND_COMMIT_METRIC, &mut slots.backend),
                (BACKEND_APPLY_WAIT_METRIC, &mut slots.apply_wait),
            ] {
                if let Some(Ok(h)) = r.metrics.get(metric).map(MetricSummary::histogram) {
                    if !h.is_empty() {
                        merge_into(slot, h);
                    }
                }
            }
        } else {
            merge_into(&mut slots.other, hist);
        }
    }
    per_node
        .into_iter()
        .filter_map(|(name, slots)| {
            let (hist, mode, backend_commit, backend_apply_wait) = match (slots.wal, slots.other) {
                (Some(h), _) => (h, WAL_MODE.to_string(), slots.backend, slots.apply_wait),
                (None, Some(h)) => (h, "fio-etcd".to_string(), None, None),
                (None, None) => return None,
            };
            (!hist.is_empty()).then_some((
                name,
                NodeSync {
                    hist,
                    mode,
                    backend_commit,
                    backend_apply_wait,
                    sequential: slots.sequential,
                },
            ))
        })
        .collect()
}

/// The rtt metrics with a readable, non-empty histogram. Each is decoded
/// here only to check it and dropped again: a fleet has thousands, a quarter
/// megabyte each when decoded.
fn rtt_metrics(run: &RunRecord) -> Vec<(RttMetricKey, &MetricSummary)> {
    let mut out = Vec::new();
    for (_, r) in run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::rtt::NAME)
    {
        for (name, summary) in &r.metrics {
            let (Ok(key), Ok(hist)) = (name.parse::<RttMetricKey>(), summary.histogram()) else {
                continue;
            };
            if !hist.is_empty() {
                out.push((key, summary));
            }
        }
    }
    out
}

/// Raft's messages are requests and replies on open TCP connections, so TCP
/// request/response first, UDP ping-pong else (a connect is paid once per
/// connection, never per commit); the native path first, since members talk
/// over the nodes' own addresses.
fn choose_basis(keys: &[(RttMetricKey, &MetricSummary)]) -> Option<RttBasis> {
    let kind_rank = |k: Kind| match k {
        Kind::TcpRr => Some(0),
        Kind::Udp => Some(1),
        Kind::TcpConnect => None,
    };
    keys.iter()
        .filter_map(|(k, _)| Some(((kind_rank(k.kind)?, k.path != NATIVE_PATH, &k.path), k)))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, k)| RttBasis {
            path: k.path.clone(),
            kind: k.kind,
        })
}
