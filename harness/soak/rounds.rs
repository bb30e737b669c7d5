//! A soak's windows as the rounds of its results: each interval is one
//! complete paced run of every probe, so `compare` can resample windows
//! like rounds and put the variation from window to window (a neighbour
//! busy at noon, idle at night) into its intervals, through the same code
//! path as `--rounds N`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use infraqual_probes::result::RoundResult;
use infraqual_probes::{MetricSummary, ProbeName};
use serde_json::Value;

use super::hlog::LogContents;

/// The windows in which `probe` measured something, as rounds numbered by
/// window; empty for a soak of one window (the merged result is that
/// window).
pub fn of_probe(log: &LogContents, probe: ProbeName) -> Result<Vec<RoundResult>> {
    let series_prefix = format!("{probe}/");
    let fact_prefix = format!("{probe}.");
    let mut rounds = Vec::new();
    for (i, interval) in log.intervals.iter().enumerate() {
        let mut round = RoundResult {
            round: i as u32 + 1,
            started_at: infraqual_probes::timestamp::rfc3339_seconds(
                UNIX_EPOCH
                    + Duration::from_secs_f64((log.start_time + interval.facts.start).max(0.0)),
            ),
            duration_ms: (interval.facts.length.max(0.0) * 1000.0) as u64,
            facts: Default::default(),
            metrics: Default::default(),
        };
        for (tag, hist) in &interval.series {
            if let Some(metric) = tag.strip_prefix(&series_prefix) {
                round.metrics.insert(
                    metric.to_string(),
                    MetricSummary::from_histogram(hist, "ns")?,
                );
            }
        }
        for (key, value) in &interval.facts.values {
            if let Some(fact) = key.strip_prefix(&fact_prefix) {
                round.facts.insert(fact.to_string(), Value::from(*value));
            }
        }
        if !round.metrics.is_empty() || !round.facts.is_empty() {
            rounds.push(round);
        }
    }
    if rounds.len() < 2 {
        rounds.clear();
    }
    Ok(rounds)
}
