//! The result contract, schema_version 1 (docs/result-contract.md). Field
//! names are read by reports, compare and outside scripts: change them only
//! with a new schema version.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ResultError;
use crate::histogram::LatencyHistogram;
use crate::probe::ProbeName;

pub const SCHEMA_VERSION: u32 = 1;

/// What one probe measured on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub schema_version: u32,
    pub probe: ProbeName,
    pub node: String,
    /// RFC 3339, UTC, seconds.
    pub started_at: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub facts: Map<String, Value>,
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Named time series as `[x, y]` pairs, x usually seconds since start.
    #[serde(default)]
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    #[serde(default)]
    pub verdicts: Vec<Verdict>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Each complete run of the probe when it ran more than once
    /// (`--rounds N`, N >= 2), in the order they ran; empty for one round.
    /// The fields above then describe all rounds together: metrics are the
    /// rounds' histograms merged, facts and verdicts judged from the merge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundResult>,
}

/// One round of a probe that ran several times: what that run alone
/// measured, so `compare` can see the variation from run to run and the
/// report can show each round beside the merged distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// 1-based, in the order the rounds ran.
    pub round: u32,
    /// RFC 3339, UTC, seconds.
    pub started_at: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub facts: Map<String, Value>,
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSummary>,
}

impl ProbeResult {
    /// A result stamped with the current wall-clock start time. Durations are
    /// measured separately with a monotonic clock (see [`ProbeResult::finish`]).
    pub fn new(probe: ProbeName, node: &str) -> Self {
        ProbeResult {
            schema_version: SCHEMA_VERSION,
            probe,
            node: node.to_string(),
            started_at: crate::timestamp::now_rfc3339(),
            duration_ms: 0,
            params: Map::new(),
            facts: Map::new(),
            metrics: BTreeMap::new(),
            series: BTreeMap::new(),
            verdicts: Vec::new(),
            warnings: Vec::new(),
            rounds: Vec::new(),
        }
    }

    /// Sets `duration_ms` from a monotonic start instant.
    pub fn finish(&mut self, started: Instant) {
        self.duration_ms = started.elapsed().as_millis() as u64;
    }

    pub fn fact(&mut self, key: &str, value: impl Into<Value>) {
        self.facts.insert(key.to_string(), value.into());
    }

    pub fn param(&mut self, key: &str, value: impl Into<Value>) {
        self.params.insert(key.to_string(), value.into());
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    pub fn metric(
        &mut self,
        key: &str,
        hist: &LatencyHistogram,
        unit: &str,
    ) -> Result<(), ResultError> {
        self.metrics
            .insert(key.to_string(), MetricSummary::from_histogram(hist, unit)?);
        Ok(())
    }

    /// The worst status among this result's verdicts (pass when none).
    pub fn worst_status(&self) -> Status {
        self.verdicts
            .iter()
            .map(|v| v.status)
            .max()
            .unwrap_or(Status::Pass)
    }
}

/// Percentiles of one histogram plus the histogram itself, so readers can
/// merge or re-derive any percentile later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub unit: String,
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// Base64 of the HdrHistogram V2 (deflate) serialization.
    pub hdr: String,
}

impl MetricSummary {
    pub fn from_histogram(hist: &LatencyHistogram, unit: &str) -> Result<Self, ResultError> {
        Ok(MetricSummary {
            unit: unit.to_string(),
            count: hist.len(),
            min: hist.min(),
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: hist.mean(),
            hdr: hist.to_base64()?,
        })
    }

    pub fn histogram(&self) -> Result<LatencyHistogram, ResultError> {
        LatencyHistogram::from_base64(&self.hdr)
    }
}

/// Ordered from best to worst so that `max()` gives the overall status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One judged check: what was observed against which threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub check: String,
    pub status: Status,
    /// None when the check was skipped.
    pub observed: Option<f64>,
    pub threshold: Option<f64>,
    pub unit: String,
    #[serde(default)]
    pub note: String,
}

impl Verdict {
    pub fn skip(check: &str, unit: &str, reason: impl Into<String>) -> Self {
        Verdict {
            check: check.to_string(),
            status: Status::Skip,
            observed: None,
            threshold: None,
            unit: unit.to_string(),
            note: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips_through_json_with_same_percentiles() {
        let mut hist = LatencyHistogram::new();
        for v in [90_000u64, 150_000, 150_000, 200_000, 260_000, 2_500_000] {
            hist.record(v);
        }
        let mut r = ProbeResult::new(crate::fsync::NAME, "local");
        r.param("block_size", 2300);
        r.fact("device", "nvme0n1");
        r.metric("fdatasync", &hist, "ns").unwrap();
        r.series
            .insert("per_second_p99_ns".into(), vec![(0.0, 250_000.0)]);
        r.verdicts.push(Verdict {
            check: "fsync.fdatasync.p99".into(),
            status: Status::Pass,
            observed: Some(260_000.0),
            threshold: Some(10_000_000.0),
            unit: "ns".into(),
            note: "etcd".into(),
        });

        let text = serde_json::to_string(&r).unwrap();
        let back: ProbeResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let m = &back.metrics["fdatasync"];
        let h = m.histogram().unwrap();
        assert_eq!(h.value_at_quantile(0.99), m.p99);
        assert_eq!(h.value_at_quantile(0.50), m.p50);
        assert_eq!(m.count, 6);

        let v: Value = serde_json::from_str(&text).unwrap();
        for key in [
            "schema_version",
            "probe",
            "node",
            "started_at",
            "duration_ms",
            "params",
            "facts",
            "metrics",
            "series",
            "verdicts",
            "warnings",
        ] {
            assert!(v.get(key).is_some(), "contract key {key} missing");
        }
        assert_eq!(v["verdicts"][0]["status"], "pass");
        assert_eq!(v["series"]["per_second_p99_ns"][0][1], 250_000.0);
    }

    #[test]
    fn worst_status_orders_fail_over_warn_over_pass() {
        let mut r = ProbeResult::new(crate::steal::NAME, "n");
        assert_eq!(r.worst_status(), Status::Pass);
        r.verdicts.push(Verdict::skip("a", "ns", "no device"));
        r.verdicts.push(Verdict {
            status: Status::Warn,
            ..Verdict::skip("b", "ns", "")
        });
        assert_eq!(r.worst_status(), Status::Warn);
        r.verdicts.push(Verdict {
            status: Status::Fail,
            ..Verdict::skip("c", "ns", "")
        });
        assert_eq!(r.worst_status(), Status::Fail);
    }
}
