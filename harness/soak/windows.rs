//! From the interval log to results: per probe the histograms merged over
//! every interval (judged as a whole), timelines of per-interval p50/p99 and
//! of the steal shares, and each check judged on its worst window as well,
//! because a neighbour that takes 30 % for ten minutes of a day disappears
//! in the day's average.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{LatencyHistogram, ProbeName, ProbeResult, Profile};
use serde_json::json;

use super::hlog::LogContents;

/// Per-interval facts kept for the timelines, as `<probe>.<fact>`.
pub const TIMELINE_FACTS: &[&str] = &["steal.steal_pct", "steal.lost_pct", "steal.throttled_pct"];

/// Series keys of the timelines start with this (`interval_p99_ns/fdatasync`,
/// `interval_pct/steal`): x is seconds since the soak started, one point per
/// interval.
pub const SERIES_PREFIX: &str = "interval_";

/// The suffix of a check judged on its worst window.
pub const WINDOW_SUFFIX: &str = ".worst_window";

pub fn results(
    log: &LogContents,
    node: &str,
    profile: &Profile,
    every: Duration,
) -> Result<Vec<ProbeResult>> {
    let mut by_probe: BTreeMap<ProbeName, ProbeResult> = BTreeMap::new();
    let mut merged: BTreeMap<(ProbeName, String), LatencyHistogram> = BTreeMap::new();
    let result_for = |probe: ProbeName| -> ProbeResult {
        let mut r = ProbeResult::new(probe, node);
        let start = UNIX_EPOCH + Duration::from_secs_f64(log.start_time.max(0.0));
        r.started_at = infraqual_probes::timestamp::rfc3339_seconds(start);
        r.duration_ms = (log.measured_seconds() * 1000.0) as u64;
        r.fact("soak_intervals", log.intervals.len());
        r.fact("soak_every_seconds", every.as_secs());
        r
    };
    for interval in &log.intervals {
        let x = round3(interval.facts.start);
        for (tag, hist) in &interval.series {
            let Some((probe, metric)) = tag.split_once('/') else {
                continue;
            };
            let Ok(probe) = probe.parse::<ProbeName>() else {
                continue;
            };
            let r = by_probe.entry(probe).or_insert_with(|| result_for(probe));
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                r.series
                    .entry(format!("{SERIES_PREFIX}{label}_ns/{metric}"))
                    .or_default()
                    .push((x, hist.value_at_quantile(q) as f64));
            }
            merged
                .entry((probe, metric.to_string()))
                .or_default()
                .merge(hist)
                .context("merging interval histograms")?;
        }
        for (key, value) in &interval.facts.values {
            let Some((probe, fact)) = key.split_once('.') else {
                continue;
            };
            let Ok(probe) = probe.parse::<ProbeName>() else {
                continue;
            };
            let name = fact.strip_suffix("_pct").unwrap_or(fact);
            let r = by_probe.entry(probe).or_insert_with(|| result_for(probe));
            r.series
                .entry(format!("{SERIES_PREFIX}pct/{name}"))
                .or_default()
                .push((x, *value));
        }
    }
    for ((probe, metric), hist) in &merged {
        if let Some(r) = by_probe.get_mut(probe) {
            r.metric(metric, hist, "ns")?;
        }
    }
    let window = HumanDuration(every).to_string();
    for r in by_probe.values_mut() {
        judge(r, log, profile, &merged, &window);
    }
    Ok(by_probe.into_values().collect())
}

/// Overall verdicts (p99 of the merged histogram; steal as the time-weighted
/// mean of the windows) and each check's worst window.
fn judge(
    r: &mut ProbeResult,
    log: &LogContents,
    profile: &Profile,
    merged: &BTreeMap<(ProbeName, String), LatencyHistogram>,
    window: &str,
) {
    let prefix = format!("{}.", r.probe);
    let checks: Vec<String> = log
        .intervals
        .iter()
        .flat_map(|i| {
            // A timeline value is judged too when the profile names it
            // (e.g. `steal.throttled_pct` in a profile for quota tests).
            let judged = i
                .facts
                .values
                .keys()
                .filter(|k| profile.checks.contains_key(*k));
            i.facts.checks.keys().chain(judged)
        })
        .filter(|c| c.starts_with(&prefix))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut worst = serde_json::Map::new();
    for check in checks {
        let windows: Vec<(f64, f64, f64)> = log
            .intervals
            .iter()
            .filter_map(|i| {
                let v = i.facts.checks.get(&check).or(i.facts.values.get(&check))?;
                Some((i.facts.start, i.facts.length, *v))
            })
            .collect();
        let overall = overall_value(&check, r.probe, &windows, merged);
        r.verdicts.push(profile.judge(&check, round3(overall)));
        let Some(&(start, _, value)) = windows.iter().max_by(|a, b| a.2.total_cmp(&b.2)) else {
            continue;
        };
        let mut v = profile.judge(&check, value);
        v.check = format!("{check}{WINDOW_SUFFIX}");
        v.note = format!(
            "worst of {} windows of {window}, at +{}",
            windows.len(),
            HumanDuration(Duration::from_secs(start.max(0.0) as u64))
        );
        r.verdicts.push(v);
        worst.insert(
            check,
            json!({ "start_seconds": round3(start), "observed": value }),
        );
    }
    r.fact("worst_window", serde_json::Value::Object(worst));
}

/// A latency check's overall value is its percentile of the merged
/// histogram; any other (steal %) the time-weighted mean of its windows.
fn overall_value(
    check: &str,
    probe: ProbeName,
    windows: &[(f64, f64, f64)],
    merged: &BTreeMap<(ProbeName, String), LatencyHistogram>,
) -> f64 {
    let parts: Vec<&str> = check.split('.').collect();
    if let [_, metric, quantile] = parts[..] {
        if let (Some(hist), Some(q)) = (
            merged.get(&(probe, metric.to_string())),
            quantile
                .strip_prefix('p')
                .and_then(|d| format!("0.{d}").parse::<f64>().ok()),
        ) {
            return hist.value_at_quantile(q) as f64;
        }
    }
    let weight: f64 = windows.iter().map(|w| w.1).sum();
    if weight <= 0.0 {
        return 0.0;
    }
    windows.iter().map(|w| w.1 * w.2).sum::<f64>() / weight
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
