//! From the interval log to results: per probe the histograms merged over
//! every interval (judged as a whole), timelines of per-interval p50/p99 and
//! of the steal shares, and each check judged on its worst window as well,
//! because a neighbour that takes 30 % for ten minutes of a day disappears
//! in the day's average. Each window is also kept as a round (rounds.rs).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{LatencyHistogram, ProbeName, ProbeResult, Profile};
use serde_json::json;

use super::hlog::LogContents;
use super::round3;

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
            merge_into(&mut merged, (probe, metric.to_string()), hist)?;
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
    let gaps = super::gaps::find(log);
    let covers_a_day = log.end() - log.intervals.first().map_or(0.0, |i| i.facts.start) >= DAY;
    for r in by_probe.values_mut() {
        judge(r, log, profile, &merged, &window);
        r.rounds = super::rounds::of_probe(log, r.probe)?;
        super::gaps::annotate(r, &gaps);
        if covers_a_day {
            let hours = by_hour_utc(log, r.probe)?;
            r.fact("by_hour_utc", hours);
        }
    }
    Ok(by_probe.into_values().collect())
}

const DAY: f64 = 86_400.0;

fn merge_into<K: Ord>(
    map: &mut BTreeMap<K, LatencyHistogram>,
    key: K,
    hist: &LatencyHistogram,
) -> Result<()> {
    map.entry(key)
        .or_default()
        .merge(hist)
        .context("merging interval histograms")
}

/// The time-of-day view of a soak that covers a day: per UTC hour, the p99
/// of each metric over the intervals that started in that hour (merged, not
/// averaged) and the mean of each timeline value.
fn by_hour_utc(log: &LogContents, probe: ProbeName) -> Result<serde_json::Value> {
    let mut hists: BTreeMap<(u32, String), LatencyHistogram> = BTreeMap::new();
    let mut values: BTreeMap<(u32, String), (f64, u32)> = BTreeMap::new();
    let prefix = format!("{probe}/");
    let fact_prefix = format!("{probe}.");
    for interval in &log.intervals {
        let hour = (((log.start_time + interval.facts.start) / 3600.0).floor() as i64)
            .rem_euclid(24) as u32;
        for (tag, hist) in &interval.series {
            if let Some(metric) = tag.strip_prefix(&prefix) {
                merge_into(&mut hists, (hour, metric.to_string()), hist)?;
            }
        }
        for (key, value) in &interval.facts.values {
            if let Some(fact) = key.strip_prefix(&fact_prefix) {
                let e = values.entry((hour, fact.to_string())).or_default();
                e.0 += value;
                e.1 += 1;
            }
        }
    }
    let mut out: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for ((hour, metric), hist) in &hists {
        out.entry(format!("{hour:02}")).or_default().insert(
            format!("{metric}_p99_ns"),
            json!(hist.value_at_quantile(0.99)),
        );
    }
    for ((hour, fact), (sum, n)) in &values {
        out.entry(format!("{hour:02}"))
            .or_default()
            .insert(fact.clone(), json!(round3(sum / f64::from(*n))));
    }
    Ok(json!(out))
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
/// Where a probe records the metric's `_each` twin (a paced run: every
/// operation as it took, without back-fill), the twin is what its own
/// verdict judged, so the overall value reads it too.
fn overall_value(
    check: &str,
    probe: ProbeName,
    windows: &[(f64, f64, f64)],
    merged: &BTreeMap<(ProbeName, String), LatencyHistogram>,
) -> f64 {
    let parts: Vec<&str> = check.split('.').collect();
    if let [_, metric, quantile] = parts[..] {
        let judged = merged
            .get(&(probe, format!("{metric}_each")))
            .or_else(|| merged.get(&(probe, metric.to_string())));
        if let (Some(hist), Some(q)) = (
            judged,
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

#[cfg(test)]
mod tests {
    use super::super::hlog::{Interval, IntervalFacts};
    use super::*;

    /// 100 syncs at 1 ms, of which `slow` at 20 ms.
    fn interval(start: f64, length: f64, slow: u64) -> Interval {
        let mut hist = LatencyHistogram::new();
        for i in 0..100 {
            hist.record(if i < slow { 20_000_000 } else { 1_000_000 });
        }
        let mut facts = IntervalFacts {
            start,
            length,
            ..Default::default()
        };
        facts.checks.insert(
            "fsync.fdatasync.p99".into(),
            hist.value_at_quantile(0.99) as f64,
        );
        facts.values.insert("steal.throttled_pct".into(), 0.0);
        Interval {
            facts,
            series: vec![("fsync/fdatasync".into(), hist)],
        }
    }

    /// A day in hourly intervals from midnight UTC; at 03:00 one sync in ten
    /// is slow, 0.4 % of the day's.
    fn day() -> LogContents {
        LogContents {
            start_time: 1_796_083_200.0,
            intervals: (0..24)
                .map(|h| interval(f64::from(h) * 3600.0, 3600.0, if h == 3 { 10 } else { 0 }))
                .collect(),
        }
    }

    fn fsync_result(log: &LogContents) -> ProbeResult {
        let profile = Profile::builtin("etcd").unwrap();
        results(log, "n", &profile, Duration::from_secs(3600))
            .unwrap()
            .into_iter()
            .find(|r| r.probe == infraqual_probes::fsync::NAME)
            .unwrap()
    }

    #[test]
    fn one_bad_window_fails_its_window_verdict_while_the_whole_passes() {
        let fsync = fsync_result(&day());
        let status = |check: &str| {
            fsync
                .verdicts
                .iter()
                .find(|v| v.check == check)
                .unwrap()
                .status
        };
        assert_eq!(
            status("fsync.fdatasync.p99"),
            infraqual_probes::Status::Pass
        );
        assert_eq!(
            status("fsync.fdatasync.p99.worst_window"),
            infraqual_probes::Status::Fail
        );
        assert_eq!(
            fsync.facts["worst_window"]["fsync.fdatasync.p99"]["start_seconds"],
            10_800.0
        );
        assert_eq!(fsync.series["interval_p99_ns/fdatasync"].len(), 24);
    }

    #[test]
    fn a_paced_slices_overall_verdict_reads_each_sync_as_it_took() {
        // The back-filled `fdatasync` of a stalled paced slice is slow in
        // every window; each sync as it took (`fdatasync_each`, what the
        // slices' own verdicts judged) is not.
        let mut log = day();
        for i in &mut log.intervals {
            let mut each = LatencyHistogram::new();
            for _ in 0..100 {
                each.record(1_000_000);
            }
            let back_filled = std::mem::replace(&mut i.series[0].1, LatencyHistogram::new());
            let mut slow = back_filled;
            for _ in 0..10 {
                slow.record(30_000_000);
            }
            i.series[0].1 = slow;
            i.series.push((
                format!("fsync/{}", infraqual_probes::fsync::JUDGED_PACED_METRIC),
                each,
            ));
        }
        let fsync = fsync_result(&log);
        let overall = fsync
            .verdicts
            .iter()
            .find(|v| v.check == "fsync.fdatasync.p99")
            .unwrap();
        assert!(overall.observed.unwrap() < 1_100_000.0, "{overall:?}");
    }

    #[test]
    fn a_day_gets_a_time_of_day_view_and_a_shorter_soak_does_not() {
        let profile = Profile::builtin("etcd").unwrap();
        let fsync = fsync_result(&day());
        let hours = fsync.facts["by_hour_utc"].as_object().unwrap();
        assert_eq!(hours.len(), 24);
        let p99 = |h: &str| hours[h]["fdatasync_p99_ns"].as_u64().unwrap();
        assert!(p99("03") > 19_000_000 && p99("04") < 1_100_000, "{hours:?}");

        let mut short = day();
        short.intervals.truncate(12);
        let all = results(&short, "n", &profile, Duration::from_secs(3600)).unwrap();
        assert!(all.iter().all(|r| !r.facts.contains_key("by_hour_utc")));
    }

    #[test]
    fn every_window_is_a_round_and_one_window_is_none() {
        let fsync = fsync_result(&day());
        assert_eq!(fsync.rounds.len(), 24);
        let slow = &fsync.rounds[3];
        assert_eq!(slow.round, 4);
        assert!(
            slow.started_at.ends_with("T03:00:00Z"),
            "{}",
            slow.started_at
        );
        assert_eq!(slow.duration_ms, 3_600_000);
        assert_eq!(slow.metrics["fdatasync"].count, 100);
        assert!(slow.metrics["fdatasync"].p99 > 19_000_000);
        assert!(fsync.rounds[4].metrics["fdatasync"].p99 < 1_100_000);

        let profile = Profile::builtin("etcd").unwrap();
        let steal = results(&day(), "n", &profile, Duration::from_secs(3600))
            .unwrap()
            .into_iter()
            .find(|r| r.probe == infraqual_probes::steal::NAME)
            .unwrap();
        assert_eq!(steal.rounds[0].facts["throttled_pct"], 0.0);

        let mut one = day();
        one.intervals.truncate(1);
        assert!(fsync_result(&one).rounds.is_empty());
    }
}
