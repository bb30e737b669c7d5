//! Can these nodes carry an etcd cluster? The predicted commit latency of a
//! put for every 3-member (and 5-member) placement among the measured nodes
//! and every leader, from the run's fdatasync and round-trip histograms
//! ([`model`]); the best placement; the timing flags etcd's tuning guide
//! derives from the round trips; and verdict lines against the profile.
//! `infraqual etcd` and the report's etcd section both print from here.

pub mod compare;
pub mod html;
pub mod inputs;
pub mod model;
mod placements;
pub mod request_time;
pub mod text;
mod timing;

use std::collections::BTreeMap;

use infraqual_probes::{LatencyHistogram, Profile, Verdict};
use serde::Serialize;

pub use inputs::{ModelInputs, RttBasis};
pub use request_time::{RequestTime, RequestTimeSummary};
pub use timing::TimingFlags;

use crate::bundle::RunRecord;
use crate::compare::sampler::{stream_seed, Distribution};
use model::{BackendStall, FollowerTerms};

/// Commits drawn per placement and leader: the p99 then rests on 200
/// draws above it.
pub const DEFAULT_SAMPLES: u32 = 20_000;
/// The fixed seed: the same run always predicts the same figures.
pub const DEFAULT_SEED: u64 = 0x00e7_cd17;
/// Placement-and-leader pairs simulated at most; beyond, the user names the
/// members.
pub const MAX_EVALUATIONS: usize = 2_000;
/// The profile check for the predicted commit p99 of the best placement.
pub const COMMIT_CHECK: &str = "etcd.commit.p99";
/// The profile check each member's WAL fdatasync p99 is judged by.
pub const WAL_FSYNC_CHECK: &str = "fsync.fdatasync.p99";

/// Why a run cannot be turned into an etcd prediction: one line, naming
/// what is missing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcdInputError {
    #[error("the run has no fsync results: the model needs each member's WAL fdatasync (run the fsync probe, mode etcd-wal)")]
    NoFsync,
    #[error("the run has no rtt results: the model needs the round trips between members (run the rtt probe)")]
    NoRtt,
    #[error("member `{name}` is not a node of this run (nodes: {known})")]
    UnknownMember { name: String, known: String },
    #[error("member `{name}` is named twice")]
    DuplicateMember { name: String },
    #[error("member `{node}` has no fsync result in this run")]
    NoMemberFsync { node: String },
    #[error("no rtt was measured between `{a}` and `{b}`")]
    NoPairRtt { a: String, b: String },
    #[error("an etcd cluster needs at least 3 members; {found}")]
    TooFewNodes { found: String },
    #[error("{count} placement-and-leader pairs are too many to simulate (at most {MAX_EVALUATIONS}): name the members with --members")]
    TooManyPlacements { count: usize },
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub samples: u32,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            samples: DEFAULT_SAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

/// The predicted commit latency with one member leading.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaderPrediction {
    pub leader: String,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// One set of members, its leaders best first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub members: Vec<String>,
    pub leaders: Vec<LeaderPrediction>,
}

impl Placement {
    pub fn best_leader(&self) -> &LeaderPrediction {
        &self.leaders[0]
    }
}

/// One member's WAL fdatasync as measured, and by which fsync mode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberSync {
    pub node: String,
    pub mode: String,
    pub p50_ns: u64,
    pub p99_ns: u64,
    /// Its backend commits as the etcd-wal mode timed them, where recorded:
    /// the leader's are what the backend-stall term draws from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_commit: Option<BackendCommitSummary>,
}

/// A member's measured backend commits, and its applies' waits for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendCommitSummary {
    pub commits: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    /// p99 of the applies' waits (`backend_apply_wait`), where recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_wait_p99_ns: Option<u64>,
    /// The waits were timed for one client sending its puts in turn.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sequential: bool,
}

/// A verdict and what it judges (a member, or the placement).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerdictLine {
    pub subject: String,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Best first: lowest p99 of the best leader, then lowest p50.
    pub placements: Vec<Placement>,
    pub member_sync: Vec<MemberSync>,
    pub rtt_source: String,
    pub samples: u32,
    pub seed: u64,
    pub flags: TimingFlags,
    pub verdicts: Vec<VerdictLine>,
    /// etcd's own request time added to every commit, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_time: Option<RequestTimeSummary>,
}

impl Prediction {
    pub fn best(&self) -> &Placement {
        &self.placements[0]
    }
}

/// Predicts `members` (or, without, every 3- and 5-member placement among
/// the measured nodes) for `run`, judged against `profile`.
pub fn predict(
    run: &RunRecord,
    members: Option<&[String]>,
    profile: &Profile,
    options: Options,
) -> Result<Prediction, EtcdInputError> {
    predict_with_request_time(run, members, profile, options, None)
}

/// [`predict`], each put also paying a draw of etcd's measured request time.
pub fn predict_with_request_time(
    run: &RunRecord,
    members: Option<&[String]>,
    profile: &Profile,
    options: Options,
    request_time: Option<&RequestTime>,
) -> Result<Prediction, EtcdInputError> {
    let request = request_time.and_then(|t| Distribution::of(&t.hist));
    let inputs = ModelInputs::read(run)?;
    let candidates = match members {
        Some(named) => vec![named_placement(run, &inputs, named)?],
        None => placements::all(&inputs)?,
    };
    let evaluations: usize = candidates.iter().map(Vec::len).sum();
    if evaluations > MAX_EVALUATIONS {
        return Err(EtcdInputError::TooManyPlacements { count: evaluations });
    }
    let sync: BTreeMap<&str, Distribution> = inputs
        .sync
        .iter()
        .filter_map(|(n, s)| Some((n.as_str(), Distribution::of(&s.hist)?)))
        .collect();
    let apply_waits: BTreeMap<&str, Distribution> = inputs
        .sync
        .iter()
        .filter_map(|(n, s)| {
            Some((
                n.as_str(),
                Distribution::of(s.backend_apply_wait.as_ref()?)?,
            ))
        })
        .collect();
    let mut rtt: BTreeMap<(String, String), Distribution> = BTreeMap::new();
    for (k, h) in &inputs.rtt {
        if let Some(d) = Distribution::of(h) {
            rtt.insert(k.clone(), d);
        }
    }
    let measured = MeasuredTerms {
        sync: &sync,
        apply_waits: &apply_waits,
        rtt: &rtt,
    };
    let mut placements: Vec<Placement> = candidates
        .into_iter()
        .map(|members| simulate_placement(members, &measured, request.as_ref(), options))
        .collect();
    placements.sort_by_key(|p| {
        let b = p.best_leader();
        (b.p99_ns, b.p50_ns)
    });
    let best = &placements[0];
    let member_sync: Vec<MemberSync> = best
        .members
        .iter()
        .filter_map(|m| {
            let s = inputs.sync.get(m)?;
            Some(MemberSync {
                node: m.clone(),
                mode: s.mode.clone(),
                p50_ns: s.hist.value_at_quantile(0.5),
                p99_ns: s.hist.value_at_quantile(0.99),
                backend_commit: s.backend_commit.as_ref().map(|h| BackendCommitSummary {
                    commits: h.len(),
                    p50_ns: h.value_at_quantile(0.5),
                    p99_ns: h.value_at_quantile(0.99),
                    apply_wait_p99_ns: s
                        .backend_apply_wait
                        .as_ref()
                        .map(|w| w.value_at_quantile(0.99)),
                    sequential: s.sequential,
                }),
            })
        })
        .collect();
    let flags = TimingFlags::for_members(&best.members, &inputs);
    let mut verdicts: Vec<VerdictLine> = member_sync
        .iter()
        .map(|s| VerdictLine {
            subject: s.node.clone(),
            verdict: profile.judge(WAL_FSYNC_CHECK, s.p99_ns as f64),
        })
        .collect();
    verdicts.push(VerdictLine {
        subject: format!(
            "{} (leader {})",
            best.members.join(","),
            best.best_leader().leader
        ),
        verdict: profile.judge(COMMIT_CHECK, best.best_leader().p99_ns as f64),
    });
    Ok(Prediction {
        placements,
        member_sync,
        rtt_source: inputs.basis.describe(),
        samples: options.samples,
        seed: options.seed,
        flags,
        verdicts,
        request_time: request_time.map(RequestTime::summary),
    })
}

fn named_placement(
    run: &RunRecord,
    inputs: &ModelInputs,
    named: &[String],
) -> Result<Vec<String>, EtcdInputError> {
    let known: Vec<&str> = run.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut members: Vec<String> = Vec::new();
    for name in named {
        if !known.contains(&name.as_str()) {
            return Err(EtcdInputError::UnknownMember {
                name: name.clone(),
                known: known.join(", "),
            });
        }
        if members.contains(name) {
            return Err(EtcdInputError::DuplicateMember { name: name.clone() });
        }
        if !inputs.sync.contains_key(name) {
            return Err(EtcdInputError::NoMemberFsync { node: name.clone() });
        }
        members.push(name.clone());
    }
    if members.len() < 3 {
        return Err(EtcdInputError::TooFewNodes {
            found: format!("--members names {}", members.len()),
        });
    }
    placements::check_pairs(inputs, &members)?;
    Ok(members)
}

/// The run's distributions the model draws from, by node (and node pair).
struct MeasuredTerms<'a> {
    sync: &'a BTreeMap<&'a str, Distribution>,
    /// Only the nodes whose fsync recorded its applies' waits.
    apply_waits: &'a BTreeMap<&'a str, Distribution>,
    rtt: &'a BTreeMap<(String, String), Distribution>,
}

fn simulate_placement(
    members: Vec<String>,
    measured: &MeasuredTerms<'_>,
    request: Option<&Distribution>,
    options: Options,
) -> Placement {
    let MeasuredTerms {
        sync,
        apply_waits,
        rtt,
    } = measured;
    let mut leaders: Vec<LeaderPrediction> = members
        .iter()
        .map(|leader| {
            let followers: Vec<FollowerTerms<'_>> = members
                .iter()
                .filter(|m| *m != leader)
                .map(|f| FollowerTerms {
                    round_trip: &rtt[&inputs::pair(leader, f)],
                    fdatasync: &sync[f.as_str()],
                })
                .collect();
            let key = format!("{}|{leader}", members.join(","));
            let leader_sync = &sync[leader.as_str()];
            let leader_backend = match apply_waits.get(leader.as_str()) {
                Some(d) => BackendStall::Measured(d),
                None => BackendStall::FromSyncs(leader_sync),
            };
            let hist: LatencyHistogram = model::simulate(
                leader_sync,
                leader_backend,
                &followers,
                request,
                options.samples,
                stream_seed(options.seed, &key),
            );
            LeaderPrediction {
                leader: leader.clone(),
                p50_ns: hist.value_at_quantile(0.5),
                p99_ns: hist.value_at_quantile(0.99),
            }
        })
        .collect();
    leaders.sort_by(|a, b| (a.p99_ns, a.p50_ns, &a.leader).cmp(&(b.p99_ns, b.p50_ns, &b.leader)));
    Placement { members, leaders }
}

#[cfg(test)]
mod tests;
