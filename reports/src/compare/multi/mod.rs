//! `infraqual compare RUN_A RUN_B RUN_C ...`: providers side by side. The
//! first run is the baseline; every other run is compared with it exactly
//! as a two-run compare does (same pairing, bootstrap and verdicts), and
//! the rows line the runs up: one column per run, the best value of each
//! row marked, each run's verdict against the baseline beside its value,
//! and an overall line per run (rows it is best on, its own checks, its
//! regressions against the baseline).

pub mod output;

use std::collections::BTreeMap;

use infraqual_probes::probe::Better;
use infraqual_probes::Status;
use serde::Serialize;

use super::bootstrap::Change;
use super::pairing::NodeMatch;
use super::variation::RunToRun;
use super::verdict::ChangeVerdict;
use super::{compare, CompareOptions, Comparison, MetricRole};
use crate::bundle::RunRecord;

/// One run's value in a row and, for every run but the baseline, its
/// verdict against the baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The row's statistic (the median for latencies, the fact itself
    /// otherwise) in the row's unit; None when the run lacks the
    /// measurement. The best value of a row is judged on it.
    pub value: Option<f64>,
    /// Latencies only: the p99 beside it.
    pub p99: Option<f64>,
    pub best: bool,
    pub verdict: Option<ChangeVerdict>,
    pub median_change: Option<Change>,
    pub p99_change: Option<Change>,
    /// Latencies only, for every run but the baseline: the rounds of the
    /// baseline and of this run behind the verdict.
    pub run_to_run: Option<RunToRun>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub probe: String,
    pub metric: String,
    /// The baseline's node the row belongs to.
    pub node: String,
    pub unit: String,
    pub better: Better,
    /// `p50` for latencies, `value` for facts.
    pub statistic: &'static str,
    /// Latencies only: whether the row's verdicts count (a context metric's
    /// never do; see [`MetricRole`]).
    pub role: Option<MetricRole>,
    pub cells: Vec<Cell>,
}

/// How one run fared over all rows.
#[derive(Clone, Debug, Serialize)]
pub struct Overall {
    pub label: String,
    pub run_id: String,
    /// Rows on which it has the best value (ties count for each).
    pub wins: usize,
    pub rows: usize,
    pub checks_passed: usize,
    pub checks_warned: usize,
    pub checks_failed: usize,
    /// Against the baseline; None for the baseline itself.
    pub regressed: Option<usize>,
    pub improved: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MultiComparison {
    pub labels: Vec<String>,
    pub run_ids: Vec<String>,
    pub noise: f64,
    pub confidence: f64,
    pub rows: Vec<Row>,
    pub overall: Vec<Overall>,
    /// Each run against the baseline, as a two-run compare reports it.
    pub pairwise: Vec<Comparison>,
}

impl MultiComparison {
    pub fn regressed(&self) -> bool {
        self.pairwise.iter().any(Comparison::regressed)
    }
}

/// (probe, metric, baseline node) of one row.
type RowKey = (String, String, String);

/// The baseline's node name a pairwise subject stands for.
fn baseline_node(subject: &str, node_match: &NodeMatch) -> String {
    match node_match {
        NodeMatch::ByName => subject.to_string(),
        NodeMatch::SingleNodes { a, .. } => a.clone(),
    }
}

fn empty_cell() -> Cell {
    Cell {
        value: None,
        p99: None,
        best: false,
        verdict: None,
        median_change: None,
        p99_change: None,
        run_to_run: None,
    }
}

/// `runs[0]` is the baseline; `labels` names each run.
pub fn compare_many(
    runs: &[&RunRecord],
    labels: &[String],
    opts: &CompareOptions,
) -> MultiComparison {
    let n = runs.len();
    let mut pairwise = Vec::new();
    let mut rows: BTreeMap<RowKey, Row> = BTreeMap::new();
    for i in 1..n {
        let mut o = opts.clone();
        o.label_a = labels[0].clone();
        o.label_b = labels[i].clone();
        let node_match = NodeMatch::of(runs[0], runs[i]);
        let c = compare(runs[0], runs[i], &o);
        for l in &c.latencies {
            let key = (
                l.probe.clone(),
                l.metric.clone(),
                baseline_node(&l.subject, &node_match),
            );
            let row = rows.entry(key.clone()).or_insert_with(|| Row {
                probe: key.0.clone(),
                metric: key.1.clone(),
                node: key.2.clone(),
                unit: l.unit.clone(),
                better: Better::Lower,
                statistic: "p50",
                role: Some(l.role),
                cells: vec![empty_cell(); n],
            });
            row.cells[0].value = Some(l.a.p50 as f64);
            row.cells[0].p99 = Some(l.a.p99 as f64);
            row.cells[i] = Cell {
                value: Some(l.b.p50 as f64),
                p99: Some(l.b.p99 as f64),
                best: false,
                verdict: Some(l.verdict),
                median_change: l.median,
                p99_change: l.p99,
                run_to_run: Some(l.run_to_run),
            };
        }
        for s in &c.scalars {
            let key = (
                s.probe.clone(),
                s.fact.clone(),
                baseline_node(&s.subject, &node_match),
            );
            let row = rows.entry(key.clone()).or_insert_with(|| Row {
                probe: key.0.clone(),
                metric: key.1.clone(),
                node: key.2.clone(),
                unit: s.unit.clone(),
                better: s.better,
                statistic: "value",
                role: None,
                cells: vec![empty_cell(); n],
            });
            row.cells[0].value = Some(s.a);
            row.cells[i].value = Some(s.b);
            row.cells[i].verdict = Some(ChangeVerdict::NotJudged);
        }
        pairwise.push(c);
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    for row in &mut rows {
        mark_best(row);
    }
    let overall = (0..n)
        .map(|i| {
            overall(
                i,
                runs[i],
                &labels[i],
                &rows,
                pairwise.get(i.wrapping_sub(1)),
            )
        })
        .collect();
    MultiComparison {
        labels: labels.to_vec(),
        run_ids: runs.iter().map(|r| r.run_id.clone()).collect(),
        noise: opts.noise,
        confidence: opts.bootstrap.confidence,
        rows,
        overall,
        pairwise,
    }
}

/// Marks every cell holding the row's best value; a row with a value in
/// fewer than two runs has no best.
fn mark_best(row: &mut Row) {
    let values: Vec<f64> = row.cells.iter().filter_map(|c| c.value).collect();
    if values.len() < 2 {
        return;
    }
    let best = match row.better {
        Better::Lower => values.iter().copied().fold(f64::INFINITY, f64::min),
        Better::Higher => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    for c in &mut row.cells {
        c.best = c.value == Some(best);
    }
}

fn overall(
    i: usize,
    run: &RunRecord,
    label: &str,
    rows: &[Row],
    against_baseline: Option<&Comparison>,
) -> Overall {
    let statuses: Vec<Status> = run
        .results()
        .flat_map(|(_, r)| r.verdicts.iter().map(|v| v.status))
        .collect();
    let count = |s: Status| statuses.iter().filter(|x| **x == s).count();
    let against = if i == 0 { None } else { against_baseline };
    Overall {
        label: label.to_string(),
        run_id: run.run_id.clone(),
        wins: rows.iter().filter(|r| r.cells[i].best).count(),
        rows: rows.iter().filter(|r| r.cells[i].value.is_some()).count(),
        checks_passed: count(Status::Pass),
        checks_warned: count(Status::Warn),
        checks_failed: count(Status::Fail),
        regressed: against.map(|c| c.count(ChangeVerdict::Regressed)),
        improved: against.map(|c| c.count(ChangeVerdict::Improved)),
    }
}

impl Overall {
    /// `nvme: best on 3 of 4 rows; checks 2 passed, 0 warned, 1 failed;
    /// against the baseline 0 regressed, 1 improved`.
    pub fn sentence(&self) -> String {
        let against = match (self.regressed, self.improved) {
            (Some(r), Some(i)) => format!("; against the baseline {r} regressed, {i} improved"),
            _ => " (the baseline)".to_string(),
        };
        format!(
            "{}: best on {} of {} rows; checks {} passed, {} warned, {} failed{against}",
            self.label,
            self.wins,
            self.rows,
            self.checks_passed,
            self.checks_warned,
            self.checks_failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better, values: &[Option<f64>]) -> Row {
        Row {
            probe: "fsync".into(),
            metric: "fdatasync".into(),
            node: "local".into(),
            unit: "ns".into(),
            better,
            statistic: "p50",
            role: Some(MetricRole::Verdict),
            cells: values
                .iter()
                .map(|v| Cell {
                    value: *v,
                    ..empty_cell()
                })
                .collect(),
        }
    }

    #[test]
    fn best_is_the_lowest_latency_or_the_highest_rate() {
        let mut r = row(Better::Lower, &[Some(3.0), Some(1.0), Some(2.0)]);
        mark_best(&mut r);
        let best: Vec<bool> = r.cells.iter().map(|c| c.best).collect();
        assert_eq!(best, [false, true, false]);
        let mut r = row(Better::Higher, &[Some(3.0), None, Some(3.0)]);
        mark_best(&mut r);
        let best: Vec<bool> = r.cells.iter().map(|c| c.best).collect();
        assert_eq!(best, [true, false, true], "ties are best for each");
    }

    #[test]
    fn a_row_measured_once_has_no_best() {
        let mut r = row(Better::Lower, &[Some(3.0), None, None]);
        mark_best(&mut r);
        assert!(r.cells.iter().all(|c| !c.best));
    }
}
