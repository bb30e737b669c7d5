//! Percentile distribution charts. A metric key `group/rest` joins the
//! other metrics of its group on one chart (services: `nftables/1000/end`
//! on the `nftables` chart); a plain key gets a chart of its own. Nodes are
//! overlaid.

use std::collections::BTreeMap;

use infraqual_probes::{LatencyHistogram, ProbeResult, Profile};

use super::rounds::RoundMarks;
use super::{slug, thresholds_for, Chart, ChartKind, Line};
use crate::export::labels::metric as metric_words;

pub fn charts(
    probe: &str,
    results: &[&ProbeResult],
    profile: &Profile,
    keep_metric: &dyn Fn(&str) -> bool,
) -> Vec<Chart> {
    let multi_node = results.len() > 1;
    let mut groups: BTreeMap<&str, Vec<Line>> = BTreeMap::new();
    let mut marks: BTreeMap<&str, Vec<RoundMarks>> = BTreeMap::new();
    for r in results {
        for (name, summary) in &r.metrics {
            if summary.count == 0 || summary.unit != "ns" || !keep_metric(name) {
                continue;
            }
            let Ok(hist) = summary.histogram() else {
                continue;
            };
            let (group, rest) = name.split_once('/').unwrap_or((name.as_str(), ""));
            let label = match (multi_node, rest.is_empty()) {
                (true, false) => format!("{} {}", r.node, metric_words(rest)),
                (false, false) => metric_words(rest),
                (_, true) => r.node.clone(),
            };
            let lines = groups.entry(group).or_default();
            if let Some(m) = RoundMarks::of(r, name, lines.len(), &label) {
                marks.entry(group).or_default().push(m);
            }
            // Only the points are kept: a decoded histogram of the
            // project's bounds is a quarter megabyte, and a fleet's rtt run
            // has thousands of metrics.
            lines.push(Line {
                label,
                points: percentile_points(&hist),
            });
        }
    }
    groups
        .into_iter()
        .map(|(group, lines)| Chart {
            id: slug(&format!("{probe}-{group}")),
            title: format!("{probe}: {group} latency by percentile"),
            probe: probe.to_string(),
            kind: ChartKind::Percentiles {
                lines,
                references: thresholds_for(profile, probe, group, "ns"),
                rounds: marks.remove(group).unwrap_or_default(),
            },
        })
        .collect()
}

/// (x, value) points for an HdrHistogram percentile plot: x is
/// log10(1 / (1 - quantile)), so 1 = p90, 2 = p99, 3 = p99.9.
pub fn percentile_points(hist: &LatencyHistogram) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    if hist.is_empty() {
        return points;
    }
    // Beyond 1/count the distribution holds no more information.
    let x_max = (hist.len() as f64).log10().max(1.0);
    for step in hist.inner().iter_quantiles(5) {
        let q = step.quantile_iterated_to();
        let x = if q >= 1.0 {
            x_max
        } else {
            (1.0 / (1.0 - q)).log10().min(x_max)
        };
        points.push((x, step.value_iterated_to() as f64));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_rise_with_the_percentile_axis() {
        let mut h = LatencyHistogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        let pts = percentile_points(&h);
        assert!(pts.len() > 10);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = pts.last().unwrap();
        assert!((last.0 - 4.0).abs() < 1e-9, "x_max = log10(count)");
        assert!((last.1 - 1_000_000.0).abs() / 1e6 < 0.001);
    }
}
