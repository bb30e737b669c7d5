//! Results with rounds: a small table of each round's p50 and p99 per
//! metric with their range, under the merged percentiles in the report,
//! and csv/<probe>-rounds.csv with one row per node, round and metric.

use std::collections::BTreeMap;
use std::fmt::Write;

use infraqual_probes::ProbeResult;

use super::labels;
use super::Artifact;
use crate::bundle::RunRecord;
use crate::error::ReportError;
use crate::format;
use crate::markup::{escape, table_start};

/// Metrics with more rows than this are folded, as the merged table is.
const OPEN_ROWS: usize = 6;

/// The per-round table of a result that ran in rounds; nothing otherwise.
pub fn table(r: &ProbeResult, h: &mut String) {
    if r.rounds.len() < 2 || r.metrics.is_empty() {
        return;
    }
    let folded = r.metrics.len() > OPEN_ROWS;
    let _ = write!(
        h,
        "{}<p>Each of the {} rounds alone (the table above merges their histograms):</p>",
        if folded {
            "<details><summary>Percentiles of each round</summary>"
        } else {
            ""
        },
        r.rounds.len()
    );
    table_start(
        h,
        &[
            "measured",
            "p50 by round",
            "p50 range",
            "p99 by round",
            "p99 range",
        ],
    );
    for (name, merged) in &r.metrics {
        let per_round: Vec<(u64, u64)> = r
            .rounds
            .iter()
            .filter_map(|round| round.metrics.get(name))
            .map(|m| (m.p50, m.p99))
            .collect();
        if per_round.is_empty() {
            continue;
        }
        let f = |v: u64| format::value(v as f64, &merged.unit);
        let list = |pick: fn(&(u64, u64)) -> u64| {
            per_round
                .iter()
                .map(|p| f(pick(p)))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        let range = |pick: fn(&(u64, u64)) -> u64| {
            let values = per_round.iter().map(pick);
            let (lo, hi) = (values.clone().min(), values.max());
            match (lo, hi) {
                (Some(lo), Some(hi)) => format!("{} – {}", f(lo), f(hi)),
                _ => String::new(),
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(&labels::metric(name)),
            escape(&list(|p| p.0)),
            escape(&range(|p| p.0)),
            escape(&list(|p| p.1)),
            escape(&range(|p| p.1)),
        );
    }
    h.push_str("</table>");
    if folded {
        h.push_str("</details>");
    }
}

/// csv/<probe>-rounds.csv for every probe with rounds on some node: the
/// per-probe CSV's columns with the round, its start and duration added.
pub fn csv_artifacts(run: &RunRecord) -> Result<Vec<Artifact>, ReportError> {
    let mut by_probe: BTreeMap<&str, Vec<(&str, &ProbeResult)>> = BTreeMap::new();
    for (node, r) in run.results() {
        if !r.rounds.is_empty() {
            by_probe
                .entry(r.probe.as_str())
                .or_default()
                .push((&node.name, r));
        }
    }
    by_probe
        .into_iter()
        .map(|(probe, results)| {
            Ok(Artifact {
                relative_path: format!("csv/{probe}-rounds.csv"),
                bytes: rounds_csv(&results)?,
            })
        })
        .collect()
}

fn rounds_csv(results: &[(&str, &ProbeResult)]) -> Result<Vec<u8>, ReportError> {
    let err = |e: csv::Error| ReportError::Encode {
        what: "CSV".into(),
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "node",
        "round",
        "started_at",
        "duration_ms",
        "metric",
        "unit",
        "count",
        "min",
        "p50",
        "p90",
        "p99",
        "p999",
        "max",
        "mean",
    ])
    .map_err(err)?;
    for (node, result) in results {
        for round in &result.rounds {
            for (name, m) in &round.metrics {
                w.write_record([
                    node.to_string(),
                    round.round.to_string(),
                    round.started_at.clone(),
                    round.duration_ms.to_string(),
                    name.clone(),
                    m.unit.clone(),
                    m.count.to_string(),
                    m.min.to_string(),
                    m.p50.to_string(),
                    m.p90.to_string(),
                    m.p99.to_string(),
                    m.p999.to_string(),
                    m.max.to_string(),
                    format!("{:.1}", m.mean),
                ])
                .map_err(err)?;
            }
        }
    }
    w.into_inner().map_err(|e| ReportError::Encode {
        what: "CSV".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use infraqual_probes::rounds::merge_common;

    use super::*;
    use crate::export::html::HtmlExporter;
    use crate::export::Exporter;
    use crate::test_runs::{hist, node, run};

    /// An fsync result of three rounds around 1, 2 and 3 ms.
    fn three_rounds() -> ProbeResult {
        let rounds = (1..=3u64)
            .map(|k| {
                let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n1");
                r.duration_ms = 1000;
                r.metric("fdatasync", &hist(k as f64 * 1e6, 500, k), "ns")
                    .unwrap();
                r
            })
            .collect();
        merge_common(rounds).unwrap()
    }

    #[test]
    fn the_report_lists_each_rounds_p50_and_p99_with_their_range() {
        let r = three_rounds();
        let mut h = String::new();
        table(&r, &mut h);
        assert!(h.contains("Each of the 3 rounds alone"), "{h}");
        let p99s: Vec<u64> = r
            .rounds
            .iter()
            .map(|x| x.metrics["fdatasync"].p99)
            .collect();
        let (lo, hi) = (p99s.iter().min().unwrap(), p99s.iter().max().unwrap());
        let range = format!(
            "{} – {}",
            format::value(*lo as f64, "ns"),
            format::value(*hi as f64, "ns")
        );
        assert!(h.contains(&escape(&range)), "{range} in {h}");

        let once = {
            let mut r = r.clone();
            r.rounds.clear();
            r
        };
        let mut none = String::new();
        table(&once, &mut none);
        assert!(none.is_empty(), "a probe run once has no round table");

        let page = HtmlExporter { charts: &[] }
            .export(&run("r", vec![node("n1", &[], vec![r])]))
            .unwrap();
        let html = String::from_utf8(page[0].bytes.clone()).unwrap();
        assert!(html.contains("p99 by round"), "the table is in the report");
    }

    #[test]
    fn rounds_csv_has_one_row_per_node_round_and_metric() {
        let r = three_rounds();
        let files = csv_artifacts(&run("r", vec![node("n1", &[], vec![r.clone()])])).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].relative_path, "csv/fsync-rounds.csv");
        let text = String::from_utf8(files[0].bytes.clone()).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(rows[0].starts_with("node,round,started_at,duration_ms,metric,unit,count"));
        let p99 = r.rounds[1].metrics["fdatasync"].p99.to_string();
        assert!(rows[2].starts_with("n1,2,"), "{}", rows[2]);
        assert!(rows[2].split(',').any(|cell| cell == p99), "{}", rows[2]);

        let once = ProbeResult::new(infraqual_probes::fsync::NAME, "n1");
        assert!(csv_artifacts(&run("r", vec![node("n1", &[], vec![once])]))
            .unwrap()
            .is_empty());
    }
}
