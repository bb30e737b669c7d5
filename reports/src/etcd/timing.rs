//! etcd's timing flags from the measured round trips, by the rules of
//! etcd's tuning guide (Documentation/tuning.md, "Time parameters"): the
//! heartbeat interval about the maximum average round trip between members,
//! the election timeout at least ten times the round trip. Never below
//! etcd's defaults, which already cover any round trip under 100 ms.

use serde::Serialize;

use super::ModelInputs;
use crate::format;

/// etcd's `--heartbeat-interval` default.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// etcd's `--election-timeout` default.
pub const DEFAULT_ELECTION_MS: u64 = 1000;
/// Election timeout over the round trip, from the tuning guide.
pub const ELECTION_OVER_RTT: u64 = 10;

pub const SOURCE: &str = "etcd tuning guide (Documentation/tuning.md, \"Time parameters\"): \
     heartbeat interval about the maximum average round trip between members, \
     election timeout at least 10x the round trip";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimingFlags {
    /// The member pair with the longest average round trip.
    pub slowest_pair: (String, String),
    pub max_rtt_mean_ns: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
}

impl TimingFlags {
    pub fn for_members(members: &[String], inputs: &ModelInputs) -> Self {
        let mut slowest = (String::new(), String::new());
        let mut max_mean = 0.0f64;
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                if let Some(h) = inputs.round_trip(a, b) {
                    if h.mean() >= max_mean {
                        max_mean = h.mean();
                        slowest = (a.clone(), b.clone());
                    }
                }
            }
        }
        let rtt_ms = (max_mean / 1e6).ceil() as u64;
        let heartbeat = DEFAULT_HEARTBEAT_MS.max(rtt_ms);
        let election = DEFAULT_ELECTION_MS.max(ELECTION_OVER_RTT * heartbeat);
        TimingFlags {
            slowest_pair: slowest,
            max_rtt_mean_ns: max_mean as u64,
            heartbeat_interval_ms: heartbeat,
            election_timeout_ms: election,
        }
    }

    /// The flags with the figures they came from.
    pub fn lines(&self, rtt_source: &str) -> Vec<String> {
        let rtt = format::duration_ns(self.max_rtt_mean_ns as f64);
        let (a, b) = &self.slowest_pair;
        vec![
            format!(
                "--heartbeat-interval={} (max member round trip {rtt} mean, {a}<->{b}, {rtt_source}; \
                 never below etcd's default {DEFAULT_HEARTBEAT_MS})",
                self.heartbeat_interval_ms
            ),
            format!(
                "--election-timeout={} (at least {ELECTION_OVER_RTT}x the heartbeat interval and so \
                 the round trip; never below etcd's default {DEFAULT_ELECTION_MS})",
                self.election_timeout_ms
            ),
            format!("source: {SOURCE}"),
        ]
    }
}
