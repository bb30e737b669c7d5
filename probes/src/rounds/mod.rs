//! Several complete runs of one probe merged into one result
//! (docs/result-contract.md, "Rounds"). Metrics merge exactly, by adding
//! histograms; each probe re-derives its facts and verdicts from the merge
//! (`Probe::merge_rounds`), starting from [`merge_common`], which does what
//! every probe shares: histograms, series, warnings, durations, the rounds
//! themselves, and facts no probe re-derives.

mod facts;
pub mod spacing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;
use crate::probe::ProbeName;
use crate::profile::Profile;
use crate::result::{MetricSummary, ProbeResult, RoundResult, Status, Verdict};

pub use facts::{merge_facts, sum_fact, weighted_mean_fact};

/// The most rounds one probe may run: beyond this a run is a soak
/// (`infraqual soak`), not a qualification.
pub const MAX_ROUNDS: u32 = 100;

/// Parses a rounds count as `--rounds` and plan files take it: a whole
/// number from 1 to [`MAX_ROUNDS`].
pub fn parse_rounds(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of rounds (1 ..= {MAX_ROUNDS})"))?;
    check_rounds(n.into())
}

/// Checks a rounds count read as a number (plan files).
pub fn check_rounds(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_ROUNDS).contains(&n) => Ok(n),
        _ => Err(format!("{n} rounds is outside 1 ..= {MAX_ROUNDS}")),
    }
}

/// What every probe's merge shares. The result has the first round's
/// identity, start and parameters; `duration_ms` is the sum of the rounds'
/// (the time the probe measured, not the wall time between its first and
/// last round, which interleaved probes share); metrics are the rounds'
/// histograms added; series are the rounds' placed end to end (x offset by
/// the earlier rounds' durations); a warning every round gave appears once,
/// the others prefixed `round k/N:`; facts as [`merge_facts`] combines
/// them; no verdicts (the probe judges the merge). `rounds` holds each
/// round's facts and metrics.
pub fn merge_common(rounds: Vec<ProbeResult>) -> Result<ProbeResult, ProbeError> {
    let Some(first) = rounds.first() else {
        return Err(ProbeError::Failed {
            probe: "rounds".into(),
            message: "no round to merge".into(),
        });
    };
    let mut merged = ProbeResult::new(first.probe, &first.node);
    merged.started_at = first.started_at.clone();
    merged.params = first.params.clone();
    merged.duration_ms = rounds.iter().map(|r| r.duration_ms).sum();
    merged.metrics = merge_metrics(&rounds)?;
    merged.series = concat_series(&rounds);
    merged.warnings = merge_warnings(&rounds);
    let round_facts: Vec<_> = rounds.iter().map(|r| &r.facts).collect();
    merged.facts = merge_facts(&round_facts);
    merged.rounds = rounds
        .into_iter()
        .enumerate()
        .map(|(i, r)| RoundResult {
            round: i as u32 + 1,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            facts: r.facts,
            metrics: r.metrics,
        })
        .collect();
    Ok(merged)
}

/// The default merge: [`merge_common`], then every verdict the rounds gave
/// judged again. A check on a metric's percentile (`<probe>.<metric>.pNN`,
/// the metric recorded) is judged on the merged histogram's percentile;
/// any other check keeps the worst round's verdict, its note saying so.
pub fn merge_default(
    rounds: Vec<ProbeResult>,
    profile: &Profile,
) -> Result<ProbeResult, ProbeError> {
    let verdicts: Vec<Vec<Verdict>> = rounds.iter().map(|r| r.verdicts.clone()).collect();
    let mut merged = merge_common(rounds)?;
    merged.verdicts = judge_again(merged.probe, &merged.metrics, &verdicts, profile);
    Ok(merged)
}

fn judge_again(
    probe: ProbeName,
    metrics: &BTreeMap<String, MetricSummary>,
    verdicts: &[Vec<Verdict>],
    profile: &Profile,
) -> Vec<Verdict> {
    let mut checks: Vec<&str> = Vec::new();
    for v in verdicts.iter().flatten() {
        if !checks.contains(&v.check.as_str()) {
            checks.push(&v.check);
        }
    }
    checks
        .into_iter()
        .filter_map(|check| {
            if let Some(observed) = metric_percentile(probe, check, metrics) {
                let worst = worst_of(verdicts, check)?;
                if worst.status != Status::Skip {
                    return Some(profile.judge(check, observed));
                }
            }
            let mut worst = worst_of(verdicts, check)?.clone();
            if verdicts.len() > 1 && worst.status != Status::Skip {
                worst.note = note_with(&worst.note, &format!("worst of {} rounds", verdicts.len()));
            }
            Some(worst)
        })
        .collect()
}

/// The verdict of `check` with the worst status (the first among equals).
pub fn worst_of<'a>(verdicts: &'a [Vec<Verdict>], check: &str) -> Option<&'a Verdict> {
    verdicts
        .iter()
        .flatten()
        .filter(|v| v.check == check)
        .reduce(|a, b| if b.status > a.status { b } else { a })
}

/// `note; addition`, or `addition` when the note is empty.
pub fn note_with(note: &str, addition: &str) -> String {
    if note.is_empty() {
        addition.to_string()
    } else {
        format!("{note}; {addition}")
    }
}

/// `<probe>.<metric>.p<digits>` read from a recorded metric, in its unit.
fn metric_percentile(
    probe: ProbeName,
    check: &str,
    metrics: &BTreeMap<String, MetricSummary>,
) -> Option<f64> {
    let rest = check.strip_prefix(probe.as_str())?.strip_prefix('.')?;
    let (metric, stat) = rest.rsplit_once('.')?;
    let m = metrics.get(metric)?;
    let value = match stat {
        "p50" => m.p50,
        "p90" => m.p90,
        "p99" => m.p99,
        "p999" => m.p999,
        "max" => m.max,
        _ => return None,
    };
    Some(value as f64)
}

/// Each metric key's histograms added over the rounds that recorded it.
pub fn merge_metrics(
    rounds: &[ProbeResult],
) -> Result<BTreeMap<String, MetricSummary>, ProbeError> {
    let mut merged: BTreeMap<String, (LatencyHistogram, String)> = BTreeMap::new();
    for round in rounds {
        for (key, summary) in &round.metrics {
            let hist = summary.histogram()?;
            match merged.get_mut(key) {
                Some((sum, _)) => sum.merge(&hist)?,
                None => {
                    merged.insert(key.clone(), (hist, summary.unit.clone()));
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|(key, (hist, unit))| Ok((key, MetricSummary::from_histogram(&hist, &unit)?)))
        .collect()
}

fn concat_series(rounds: &[ProbeResult]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut offset_s = 0.0;
    for round in rounds {
        for (key, points) in &round.series {
            out.entry(key.clone())
                .or_default()
                .extend(points.iter().map(|(x, y)| (x + offset_s, *y)));
        }
        offset_s += round.duration_ms as f64 / 1000.0;
    }
    out
}

fn merge_warnings(rounds: &[ProbeResult]) -> Vec<String> {
    let n = rounds.len();
    let everywhere = |w: &String| rounds.iter().all(|r| r.warnings.contains(w));
    let mut out: Vec<String> = Vec::new();
    for (i, round) in rounds.iter().enumerate() {
        for w in &round.warnings {
            let line = if everywhere(w) {
                w.clone()
            } else {
                format!("round {}/{n}: {w}", i + 1)
            };
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// The warning a result gets when fewer rounds ran than were asked for.
pub fn partial_warning(ran: usize, asked: u32, why: &str) -> String {
    format!("{ran} of {asked} rounds ran: {why}")
}
