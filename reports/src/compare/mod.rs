//! `infraqual compare`: run A against run B, criterion.rs's layering. The
//! statistics (sampler, bootstrap, verdict) know nothing of output; pairing
//! decides what is comparable; output/ renders a finished [`Comparison`].

pub mod bootstrap;
pub mod levels;
pub mod multi;
pub mod output;
pub mod pairing;
pub mod regions;
pub mod sampler;
pub mod small_sample;
pub mod variation;
pub mod verdict;

#[cfg(test)]
mod coverage;
#[cfg(test)]
mod tests;

use infraqual_probes::{LatencyHistogram, MetricSummary};
use serde::Serialize;

use crate::bundle::RunRecord;
use crate::format;
use bootstrap::{BootstrapConfig, Change};
use levels::Levels;
use pairing::{Key, NodeMatch, RunMetric};
use regions::RegionReport;
use sampler::{stream_seed, Distribution, SplitMix64};
use variation::RunToRun;
use verdict::{judge, Better, ChangeVerdict};

pub const DEFAULT_SEED: u64 = 0x1f0a_5eed;
pub const DEFAULT_NOISE: f64 = 0.05;

#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub label_a: String,
    pub label_b: String,
    /// Fraction: 0.05 = 5 %.
    pub noise: f64,
    pub seed: u64,
    pub bootstrap: BootstrapConfig,
}

impl CompareOptions {
    pub fn new(label_a: &str, label_b: &str) -> Self {
        CompareOptions {
            label_a: label_a.to_string(),
            label_b: label_b.to_string(),
            noise: DEFAULT_NOISE,
            seed: DEFAULT_SEED,
            bootstrap: BootstrapConfig::default(),
        }
    }
}

/// count and quantiles of one side, in the metric's unit.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

impl Side {
    fn of(m: &MetricSummary) -> Self {
        Side {
            count: m.count,
            p50: m.p50,
            p99: m.p99,
            p999: m.p999,
        }
    }
}

/// Whether a metric's verdict counts in the comparison's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricRole {
    /// What the probe qualifies (fsync: fdatasync): its verdict is the
    /// comparison's.
    Verdict,
    /// Measured for context (fsync: write, a CPU-bound copy): judged and
    /// shown, never in the comparison's verdict or exit code.
    Context,
}

/// One latency metric of both runs, judged from its distributions.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyComparison {
    pub probe: String,
    pub subject: String,
    pub metric: String,
    pub unit: String,
    pub role: MetricRole,
    /// For a context metric: why its change is not a verdict on what the
    /// probe qualifies.
    pub context_why: Option<String>,
    pub a: Side,
    pub b: Side,
    /// The rounds behind the intervals: with several on both sides they
    /// include the variation from run to run.
    pub run_to_run: RunToRun,
    /// Why the intervals do not include it and what to run instead.
    pub run_to_run_note: Option<String>,
    pub median: Option<Change>,
    pub median_verdict: ChangeVerdict,
    pub p99: Option<Change>,
    pub p99_verdict: ChangeVerdict,
    /// Point change of p99.9 only: a tail of a few samples has no
    /// meaningful interval.
    pub p999_change: Option<f64>,
    /// Regressed when either quantile regressed, improved when one improved
    /// and none regressed.
    pub verdict: ChangeVerdict,
    #[serde(skip)]
    pub hist_a: LatencyHistogram,
    #[serde(skip)]
    pub hist_b: LatencyHistogram,
}

impl LatencyComparison {
    pub fn name(&self) -> String {
        format!("{} {}", self.probe, self.metric)
    }

    pub fn in_verdict(&self) -> bool {
        self.role == MetricRole::Verdict
    }

    /// The verdict as a table cell: `improved, context only` for a
    /// context metric.
    pub fn verdict_cell(&self) -> String {
        match self.role {
            MetricRole::Verdict => self.verdict.to_string(),
            MetricRole::Context => format!("{}, context only", self.verdict),
        }
    }
}

/// A numeric fact of both runs: the change is reported, never judged.
#[derive(Clone, Debug, Serialize)]
pub struct ScalarComparison {
    pub probe: String,
    pub subject: String,
    pub fact: String,
    pub unit: String,
    pub better: Better,
    pub a: f64,
    pub b: f64,
    /// B/A - 1; None when A is zero.
    pub change: Option<f64>,
    pub verdict: ChangeVerdict,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub label_a: String,
    pub label_b: String,
    pub run_a: String,
    pub run_b: String,
    pub noise: f64,
    pub seed: u64,
    pub resamples: usize,
    pub confidence: f64,
    pub pairing_note: Option<String>,
    pub latencies: Vec<LatencyComparison>,
    pub scalars: Vec<ScalarComparison>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub regions: Option<RegionReport>,
    pub summary: Vec<String>,
}

impl Comparison {
    /// A metric in the verdict regressed (context metrics never decide).
    pub fn regressed(&self) -> bool {
        self.count(ChangeVerdict::Regressed) > 0
    }

    /// Metrics in the verdict with verdict `v`.
    pub fn count(&self, v: ChangeVerdict) -> usize {
        self.latencies
            .iter()
            .filter(|l| l.in_verdict() && l.verdict == v)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.latencies.is_empty() && self.scalars.is_empty()
    }
}

pub fn compare(a: &RunRecord, b: &RunRecord, opts: &CompareOptions) -> Comparison {
    let node_match = NodeMatch::of(a, b);
    let paired = pairing::pair(a, b, &node_match);
    let latencies: Vec<LatencyComparison> = paired
        .metrics
        .iter()
        .filter_map(|p| compare_latency(&p.key, &p.a, &p.b, opts))
        .collect();
    let scalars: Vec<ScalarComparison> = paired
        .scalars
        .iter()
        .map(|s| ScalarComparison {
            probe: s.key.0.to_string(),
            subject: s.key.1.clone(),
            fact: s.key.2.clone(),
            unit: s.unit.to_string(),
            better: s.better,
            a: s.a,
            b: s.b,
            change: (s.a != 0.0).then(|| s.b / s.a - 1.0),
            verdict: ChangeVerdict::NotJudged,
        })
        .collect();
    let mut c = Comparison {
        label_a: opts.label_a.clone(),
        label_b: opts.label_b.clone(),
        run_a: a.run_id.clone(),
        run_b: b.run_id.clone(),
        noise: opts.noise,
        seed: opts.seed,
        resamples: opts.bootstrap.resamples,
        confidence: opts.bootstrap.confidence,
        pairing_note: node_match.note(),
        latencies,
        scalars,
        only_in_a: paired.only_a,
        only_in_b: paired.only_b,
        regions: RegionReport::of(&opts.label_a, a, &opts.label_b, b),
        summary: Vec::new(),
    };
    c.summary = summarize(&c);
    c.summary.extend(crate::etcd::compare::summary_lines(&[
        (&opts.label_a, a),
        (&opts.label_b, b),
    ]));
    c
}

/// The levels a side is resampled at: its rounds when it has several
/// that decode, else the whole run.
fn levels_of(m: &RunMetric, merged: Distribution, max_draws: u64) -> Levels {
    let rounds: Option<Vec<Distribution>> = m
        .rounds
        .iter()
        .map(|r| Distribution::of(&r.histogram().ok()?))
        .collect();
    Levels::of(merged, rounds.unwrap_or_default(), max_draws)
}

fn compare_latency(
    key: &Key,
    a: &RunMetric,
    b: &RunMetric,
    opts: &CompareOptions,
) -> Option<LatencyComparison> {
    let (hist_a, hist_b) = (a.merged.histogram().ok()?, b.merged.histogram().ok()?);
    let (da, db) = (Distribution::of(&hist_a)?, Distribution::of(&hist_b)?);
    let max_draws = opts.bootstrap.max_draws;
    let (la, lb) = (levels_of(a, da, max_draws), levels_of(b, db, max_draws));
    let run_to_run = RunToRun {
        rounds_a: la.rounds(),
        rounds_b: lb.rounds(),
    };
    let stream = format!("{}/{}/{}", key.0, key.1, key.2);
    let mut rng = SplitMix64::new(stream_seed(opts.seed, &stream));
    let changes = bootstrap::quantile_changes(&la, &lb, &[0.5, 0.99], &opts.bootstrap, &mut rng);
    let judged = |c: &Option<Change>| {
        c.as_ref()
            .map(|c| judge(c, opts.noise, Better::Lower))
            .unwrap_or(ChangeVerdict::NotJudged)
    };
    let (median, p99) = (changes[0], changes[1]);
    let (median_verdict, p99_verdict) = (judged(&median), judged(&p99));
    let verdicts = [median_verdict, p99_verdict];
    let context = key
        .0
        .descriptor()
        .context_metrics
        .iter()
        .find(|c| c.metric == key.2);
    let verdict = if verdicts.contains(&ChangeVerdict::Regressed) {
        ChangeVerdict::Regressed
    } else if verdicts.contains(&ChangeVerdict::Improved) {
        ChangeVerdict::Improved
    } else if verdicts.contains(&ChangeVerdict::NoChange) {
        ChangeVerdict::NoChange
    } else {
        ChangeVerdict::NotJudged
    };
    Some(LatencyComparison {
        probe: key.0.to_string(),
        subject: key.1.clone(),
        metric: key.2.clone(),
        unit: a.merged.unit.clone(),
        role: if context.is_some() {
            MetricRole::Context
        } else {
            MetricRole::Verdict
        },
        context_why: context.map(|c| c.why.to_string()),
        a: Side::of(a.merged),
        b: Side::of(b.merged),
        run_to_run,
        run_to_run_note: run_to_run.advice(),
        median,
        median_verdict,
        p99,
        p99_verdict,
        p999_change: (a.merged.p999 > 0).then(|| b.merged.p999 as f64 / a.merged.p999 as f64 - 1.0),
        verdict,
        hist_a,
        hist_b,
    })
}

/// `+12.3 %`
pub fn percent(fraction: f64) -> String {
    format!("{:+.1} %", fraction * 100.0)
}

/// `+12.3 % [+10.1 %, +14.0 %]`
pub fn change_text(c: &Change) -> String {
    format!(
        "{} [{}, {}]",
        percent(c.point),
        percent(c.low),
        percent(c.high)
    )
}

/// The quantile a summary line reports for one latency metric.
struct Driver {
    quantile: &'static str,
    a: u64,
    b: u64,
    change: Change,
}

impl Driver {
    /// The quantile whose verdict is the metric's verdict (the median when
    /// both agree or nothing changed).
    fn of(l: &LatencyComparison) -> Option<Driver> {
        let median = l.median.map(|change| Driver {
            quantile: "median",
            a: l.a.p50,
            b: l.b.p50,
            change,
        });
        let p99 = l.p99.map(|change| Driver {
            quantile: "p99",
            a: l.a.p99,
            b: l.b.p99,
            change,
        });
        if l.verdict != ChangeVerdict::NoChange
            && l.median_verdict != l.verdict
            && l.p99_verdict == l.verdict
        {
            p99.or(median)
        } else {
            median.or(p99)
        }
    }
}

/// One line on the rounds behind all verdicts: whether the intervals
/// include the variation from run to run, and if not, for how many metrics
/// and what to run.
fn run_to_run_line(c: &Comparison) -> Option<String> {
    let judged: Vec<&LatencyComparison> = c
        .latencies
        .iter()
        .filter(|l| l.verdict != ChangeVerdict::NotJudged)
        .collect();
    let missing: Vec<&LatencyComparison> = judged
        .iter()
        .copied()
        .filter(|l| !l.run_to_run.measured())
        .collect();
    let Some(first) = missing.first() else {
        let rounds: std::collections::BTreeSet<String> =
            judged.iter().map(|l| l.run_to_run.rounds_text()).collect();
        return (!judged.is_empty()).then(|| {
            format!(
                "every interval includes the variation from run to run ({}; rounds drawn \
                 with replacement, then samples within them, the interval widened by \
                 Student's t for so few rounds)",
                rounds.into_iter().collect::<Vec<_>>().join(", ")
            )
        });
    };
    Some(format!(
        "{} of {} judged metrics: intervals from the noise within one run only, {}",
        missing.len(),
        judged.len(),
        first.run_to_run_note.as_deref().unwrap_or_default()
    ))
}

/// For a metric judged no change whose intervals reach past the noise
/// threshold: how far, since "no change" then means "not resolved", not
/// "within the threshold" (criterion's "change within noise threshold" needs
/// the whole interval inside it). On a drifting disk an interval can span
/// -90 % to +2000 %, and a reader must not take that for a clean bill.
fn unresolved_reach(l: &LatencyComparison, noise: f64) -> Option<String> {
    if l.verdict != ChangeVerdict::NoChange {
        return None;
    }
    let widest = [("median", l.median), ("p99", l.p99)]
        .into_iter()
        .filter_map(|(q, c)| Some((q, c?)))
        .map(|(q, c)| (q, c.low.abs().max(c.high.abs()), c))
        .filter(|(_, reach, _)| *reach > noise)
        .max_by(|x, y| x.1.total_cmp(&y.1))?;
    let (quantile, _, c) = widest;
    Some(format!(
        "; not resolved: the {quantile} interval [{}, {}] reaches past the threshold, \
         so a change that large is not ruled out",
        percent(c.low),
        percent(c.high)
    ))
}

/// `fsync fdatasync (local): median 200 µs -> 210 µs, +5.0 % [...] —
/// no change (why)`
fn change_line(l: &LatencyComparison, d: &Driver, why: &str) -> String {
    format!(
        "{} ({}): {} {} -> {}, {} — {} ({why})",
        l.name(),
        l.subject,
        d.quantile,
        format::value(d.a as f64, &l.unit),
        format::value(d.b as f64, &l.unit),
        change_text(&d.change),
        l.verdict
    )
}

/// What changed most, in a few lines.
fn summarize(c: &Comparison) -> Vec<String> {
    let in_verdict = c.latencies.iter().filter(|l| l.in_verdict()).count();
    let context = c.latencies.len() - in_verdict;
    let context_text = if context > 0 {
        format!(" ({context} more for context only, below)")
    } else {
        String::new()
    };
    let mut lines = vec![format!(
        "{} latency metrics in the verdict{context_text}: {} regressed, {} improved, {} no \
         significant change (noise threshold {:.1} %, {:.0} % bootstrap intervals, {} \
         resamples, seed {})",
        in_verdict,
        c.count(ChangeVerdict::Regressed),
        c.count(ChangeVerdict::Improved),
        c.count(ChangeVerdict::NoChange),
        c.noise * 100.0,
        c.confidence * 100.0,
        c.resamples,
        c.seed
    )];
    // Changes that were judged significant first, each told by the quantile
    // that decided its verdict, so a line never pairs "regressed" with a
    // median that barely moved.
    let mut ranked: Vec<(&LatencyComparison, Driver)> = c
        .latencies
        .iter()
        .filter(|l| l.in_verdict())
        .filter_map(|l| Some((l, Driver::of(l)?)))
        .collect();
    ranked.sort_by(|(x, dx), (y, dy)| {
        let judged = |l: &LatencyComparison| l.verdict != ChangeVerdict::NoChange;
        judged(y)
            .cmp(&judged(x))
            .then(dy.change.point.abs().total_cmp(&dx.change.point.abs()))
    });
    for (l, d) in ranked.iter().take(3) {
        let mut why = l.run_to_run.decided_by(c.noise);
        if let Some(reach) = unresolved_reach(l, c.noise) {
            why.push_str(&reach);
        }
        lines.push(change_line(l, d, &why));
    }
    for l in c.latencies.iter().filter(|l| !l.in_verdict()) {
        let Some(d) = Driver::of(l) else { continue };
        let why = l.context_why.as_deref().unwrap_or_default();
        lines.push(format!(
            "context only, not in the verdict: {}",
            change_line(l, &d, why)
        ));
    }
    lines.extend(run_to_run_line(c));
    let biggest_scalar = c
        .scalars
        .iter()
        .filter_map(|s| Some((s, s.change?)))
        .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()));
    if let Some((s, change)) = biggest_scalar {
        lines.push(format!(
            "largest change without a distribution: {} {} ({}): {} -> {} ({}), not judged",
            s.probe,
            s.fact,
            s.subject,
            format::value(s.a, &s.unit),
            format::value(s.b, &s.unit),
            percent(change)
        ));
    }
    if let Some(note) = &c.pairing_note {
        lines.push(note.clone());
    }
    if let Some(r) = &c.regions {
        lines.extend(r.impact.iter().cloned());
    }
    lines
}
