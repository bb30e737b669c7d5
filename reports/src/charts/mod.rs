//! Charts: what to draw (this module and one file per chart kind) kept apart
//! from how (draw.rs, the one plotting backend: plotters, SVG and PNG).

pub mod draw;
pub mod percentiles;
pub mod timeline;

use std::collections::BTreeMap;

use infraqual_probes::{LatencyHistogram, ProbeResult};

use crate::bundle::RunRecord;

/// A horizontal reference line (a verdict threshold) in the chart's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub value: f64,
    pub label: String,
}

/// One labelled series of points.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub enum ChartKind {
    /// HdrHistogram-style percentile distribution: log-scaled percentile
    /// axis, one line per histogram (per node, per path, ...).
    Percentiles {
        histograms: Vec<(String, LatencyHistogram)>,
        reference: Option<Reference>,
    },
    /// Values against seconds since the start.
    Timeline {
        y_label: String,
        lines: Vec<Line>,
        reference: Option<Reference>,
    },
    /// Values against a numeric x (service count, payload size, ...).
    Lines {
        x_label: String,
        y_label: String,
        log_x: bool,
        lines: Vec<Line>,
    },
}

#[derive(Clone, Debug)]
pub struct Chart {
    /// File stem under plots/ (`fsync-fdatasync`); unique within a run.
    pub id: String,
    pub title: String,
    /// The probe it belongs to, so the report places it in that section.
    pub probe: String,
    pub kind: ChartKind,
}

/// Every chart of a run: for each probe, a percentile distribution per
/// metric (all nodes overlaid) and a timeline per series group, then the
/// probe-specific charts.
pub fn charts_for(run: &RunRecord) -> Vec<Chart> {
    let mut by_probe: BTreeMap<String, Vec<&ProbeResult>> = BTreeMap::new();
    for (_, r) in run.results() {
        by_probe.entry(r.probe.clone()).or_default().push(r);
    }
    let mut charts = Vec::new();
    for (probe, results) in &by_probe {
        charts.extend(percentiles::charts(probe, results));
        charts.extend(timeline::charts(probe, results));
    }
    charts
}

/// A threshold for `metric` from a verdict named `<probe>.<metric>.<pNN>`.
pub(crate) fn threshold_for(result: &ProbeResult, metric: &str) -> Option<Reference> {
    let unit = &result.metrics.get(metric)?.unit;
    result.verdicts.iter().find_map(|v| {
        let mut parts = v.check.splitn(3, '.');
        let (p, m) = (parts.next()?, parts.next()?);
        if p == result.probe && m == metric && &v.unit == unit {
            let value = v.threshold?;
            Some(Reference {
                value,
                label: format!("{} threshold", v.check),
            })
        } else {
            None
        }
    })
}

/// File-name-safe id: `a->b/native/udp` becomes `a-b-native-udp`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("a->b/native/udp"), "a-b-native-udp");
        assert_eq!(slug("fsync fdatasync"), "fsync-fdatasync");
    }
}
