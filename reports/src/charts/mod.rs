//! Charts: what to draw (this module and one file per chart kind) kept apart
//! from how (draw.rs, the one plotting backend: plotters, SVG and PNG).

pub mod cdf;
pub mod draw;
mod heatmap;
pub mod percentiles;
pub mod rounds;
pub mod rtt;
pub mod services_first_packet;
pub mod services_programming;
pub mod throughput_loss;
pub mod timeline;

use std::collections::BTreeMap;

use infraqual_probes::probe::ReportPart;
use infraqual_probes::{ProbeName, ProbeResult, Profile};

use crate::bundle::RunRecord;

/// A horizontal reference line (a profile threshold) in the chart's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub value: f64,
    pub label: String,
    /// Fail thresholds are drawn red, warn thresholds orange.
    pub fail: bool,
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
    /// axis, one line per histogram (per node, per path, ...), its points
    /// from [`percentiles::percentile_points`].
    Percentiles {
        lines: Vec<Line>,
        references: Vec<Reference>,
        /// Each round's p50 and p99 beside the merged lines (results with rounds).
        rounds: Vec<rounds::RoundMarks>,
    },
    /// Values against seconds since the start.
    Timeline {
        y_label: String,
        lines: Vec<Line>,
        references: Vec<Reference>,
    },
    /// A matrix of latencies (row x column, e.g. agent x agent), each cell
    /// coloured and labelled; None is a missing cell.
    Heatmap {
        rows: Vec<String>,
        cols: Vec<String>,
        values_ns: Vec<Vec<Option<f64>>>,
    },
    /// Values against a numeric x (service count, payload size, ...).
    Lines {
        x_label: String,
        y_label: String,
        log_x: bool,
        /// Log y for values spanning orders of magnitude (programming time).
        log_y: bool,
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
/// charts of the report parts the probe declares.
pub fn charts_for(run: &RunRecord) -> Vec<Chart> {
    let mut by_probe: BTreeMap<ProbeName, Vec<&ProbeResult>> = BTreeMap::new();
    for (_, r) in run.results() {
        by_probe.entry(r.probe).or_default().push(r);
    }
    let mut charts = Vec::new();
    for (probe, results) in &by_probe {
        let parts = probe.descriptor().report_parts;
        let keep = distribution_filter(parts, results);
        let keep_metric = |m: &str| keep.as_ref().is_none_or(|k| k.contains(m));
        charts.extend(percentiles::charts(
            probe.as_str(),
            results,
            &run.profile,
            &keep_metric,
        ));
        charts.extend(timeline::charts(probe.as_str(), results, &run.profile));
        for part in parts {
            charts.extend(part_charts(*part, results, run));
        }
    }
    charts
}

/// The charts of one report part (tables are drawn by the HTML export).
fn part_charts(part: ReportPart, results: &[&ProbeResult], run: &RunRecord) -> Vec<Chart> {
    match part {
        ReportPart::ServicesFirstPacket => services_first_packet::charts(results),
        ReportPart::ServicesProgramming => {
            services_programming::chart(results).into_iter().collect()
        }
        ReportPart::RttHeatmaps => rtt::charts(results, &crate::regions::region_of(run)),
        ReportPart::RttTables => Vec::new(),
        ReportPart::ThroughputUdpLoss => throughput_loss::chart(results).into_iter().collect(),
    }
}

/// The metrics whose distributions are drawn, where a part narrows them: a
/// Services sweep holds a histogram per mode, count and position, and its
/// distribution charts show the largest count, where the modes differ.
fn distribution_filter(
    parts: &[ReportPart],
    results: &[&ProbeResult],
) -> Option<std::collections::BTreeSet<String>> {
    if parts.contains(&ReportPart::ServicesFirstPacket) {
        services_first_packet::metrics_at_largest_count(results)
    } else {
        None
    }
}

/// The warn and fail lines of the profile's checks on `metric` of `probe`
/// (checks named `<probe>.<metric>.<statistic>` in the metric's unit), so a
/// chart shows both lines whatever the verdict was.
pub(crate) fn thresholds_for(
    profile: &Profile,
    probe: &str,
    metric: &str,
    unit: &str,
) -> Vec<Reference> {
    let mut refs = Vec::new();
    for (check, t) in &profile.checks {
        let mut parts = check.splitn(3, '.');
        let (Some(p), Some(m), Some(stat)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if p != probe || m != metric || t.unit != unit {
            continue;
        }
        if let Some(warn) = t.warn {
            refs.push(Reference {
                value: warn,
                label: format!("{stat} warn"),
                fail: false,
            });
        }
        refs.push(Reference {
            value: t.fail,
            label: format!("{stat} fail"),
            fail: true,
        });
    }
    refs
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
