//! csv/<probe>.csv: one row per node and metric (percentiles, ns), or per
//! node and fact for probes that only report facts; csv/verdicts.csv; and
//! csv/<probe>-rounds.csv for probes that ran in rounds (export/rounds.rs).

use std::collections::BTreeMap;

use infraqual_probes::ProbeResult;
use serde_json::Value;

use super::{Artifact, Exporter};
use crate::bundle::{NodeRecord, RunRecord};
use crate::error::ReportError;

pub struct CsvExporter;

impl Exporter for CsvExporter {
    fn export(&self, run: &RunRecord) -> Result<Vec<Artifact>, ReportError> {
        let mut by_probe: BTreeMap<&str, Vec<(&NodeRecord, &ProbeResult)>> = BTreeMap::new();
        for (node, result) in run.results() {
            by_probe
                .entry(result.probe.as_str())
                .or_default()
                .push((node, result));
        }
        let mut artifacts = Vec::new();
        for (probe, results) in by_probe {
            let bytes = if results.iter().any(|(_, r)| !r.metrics.is_empty()) {
                metrics_csv(&results)?
            } else {
                facts_csv(&results)?
            };
            artifacts.push(Artifact {
                relative_path: format!("csv/{probe}.csv"),
                bytes,
            });
        }
        artifacts.extend(super::rounds::csv_artifacts(run)?);
        artifacts.push(Artifact {
            relative_path: "csv/verdicts.csv".into(),
            bytes: verdicts_csv(run)?,
        });
        Ok(artifacts)
    }
}

fn encode_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Encode {
        what: "CSV".into(),
        message: e.to_string(),
    }
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ReportError> {
    w.into_inner().map_err(encode_err)
}

fn metrics_csv(results: &[(&NodeRecord, &ProbeResult)]) -> Result<Vec<u8>, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "node", "metric", "unit", "count", "min", "p50", "p90", "p99", "p999", "max", "mean",
    ])
    .map_err(encode_err)?;
    for (node, result) in results {
        for (name, m) in &result.metrics {
            w.write_record([
                node.name.as_str(),
                name,
                &m.unit,
                &m.count.to_string(),
                &m.min.to_string(),
                &m.p50.to_string(),
                &m.p90.to_string(),
                &m.p99.to_string(),
                &m.p999.to_string(),
                &m.max.to_string(),
                &format!("{:.1}", m.mean),
            ])
            .map_err(encode_err)?;
        }
    }
    finish(w)
}

fn facts_csv(results: &[(&NodeRecord, &ProbeResult)]) -> Result<Vec<u8>, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["node", "fact", "value"])
        .map_err(encode_err)?;
    for (node, result) in results {
        let mut flat = Vec::new();
        for (k, v) in &result.facts {
            flatten(k, v, &mut flat);
        }
        for (k, v) in flat {
            w.write_record([node.name.as_str(), &k, &v])
                .map_err(encode_err)?;
        }
    }
    finish(w)
}

/// `disks[0].model` style keys so nested facts stay one row each.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                flatten(&format!("{prefix}.{k}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), child, out);
            }
        }
        Value::Null => out.push((prefix.to_string(), String::new())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn verdicts_csv(run: &RunRecord) -> Result<Vec<u8>, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "node",
        "probe",
        "check",
        "status",
        "observed",
        "threshold",
        "unit",
        "note",
    ])
    .map_err(encode_err)?;
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for (node, result) in run.results() {
        for v in &result.verdicts {
            w.write_record([
                node.name.as_str(),
                result.probe.as_str(),
                &v.check,
                v.status.as_str(),
                &num(v.observed),
                &num(v.threshold),
                &v.unit,
                &v.note,
            ])
            .map_err(encode_err)?;
        }
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_facts_flatten_to_one_row_each() {
        let mut out = Vec::new();
        flatten(
            "disks",
            &json!([{"name": "vda", "rotational": true}, {"name": "sda", "model": null}]),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("disks[0].name".into(), "vda".into()),
                ("disks[0].rotational".into(), "true".into()),
                ("disks[1].model".into(), "".into()),
                ("disks[1].name".into(), "sda".into()),
            ]
        );
    }
}
