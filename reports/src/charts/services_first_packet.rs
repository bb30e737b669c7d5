//! services: first-packet (TCP connect) latency against the number of
//! Services, log x, one line per proxy mode, for the end of the service
//! list (the worst case of an O(n) layout) — one chart for p50, one for p99.

use std::collections::BTreeMap;

use infraqual_probes::ProbeResult;

use super::{slug, Chart, ChartKind, Line};

/// The position plotted: where iptables' linear walk costs the most.
const POSITION: &str = "end";

pub fn charts(results: &[&ProbeResult]) -> Vec<Chart> {
    let multi_node = results.len() > 1;
    let mut p50: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut p99: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in results {
        for (key, summary) in &r.metrics {
            let mut parts = key.split('/');
            let (Some(mode), Some(count), Some(position), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(count) = count.parse::<f64>() else {
                continue;
            };
            if position != POSITION || summary.count == 0 || count <= 0.0 {
                continue;
            }
            let label = if multi_node {
                format!("{} {mode}", r.node)
            } else {
                mode.to_string()
            };
            p50.entry(label.clone())
                .or_default()
                .push((count, summary.p50 as f64));
            p99.entry(label)
                .or_default()
                .push((count, summary.p99 as f64));
        }
    }
    [("p50", p50), ("p99", p99)]
        .into_iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(stat, lines)| Chart {
            id: slug(&format!("services-first-packet-{stat}")),
            title: format!("services: first packet {stat} at the end of the list"),
            probe: "services".into(),
            kind: ChartKind::Lines {
                x_label: "services".into(),
                y_label: "latency".into(),
                log_x: true,
                log_y: false,
                lines: sorted_lines(lines),
            },
        })
        .collect()
}

pub(crate) fn sorted_lines(lines: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Line> {
    lines
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line { label, points }
        })
        .collect()
}

/// Metric keys `<mode>/<count>/<position>` at each mode's largest count.
pub fn metrics_at_largest_count(
    results: &[&ProbeResult],
) -> Option<std::collections::BTreeSet<String>> {
    let mut largest: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in results {
        for key in r.metrics.keys() {
            let mut parts = key.split('/');
            if let (Some(mode), Some(Ok(count))) =
                (parts.next(), parts.next().map(str::parse::<u64>))
            {
                let e = largest.entry(mode).or_insert(count);
                *e = (*e).max(count);
            }
        }
    }
    if largest.is_empty() {
        return None;
    }
    let keep = results
        .iter()
        .flat_map(|r| r.metrics.keys())
        .filter(|key| {
            let mut parts = key.split('/');
            match (parts.next(), parts.next().map(str::parse::<u64>)) {
                (Some(mode), Some(Ok(count))) => largest.get(mode) == Some(&count),
                _ => true,
            }
        })
        .cloned()
        .collect();
    Some(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::LatencyHistogram;

    #[test]
    fn one_line_per_mode_sorted_by_count() {
        let mut r = ProbeResult::new(infraqual_probes::services::NAME, "local");
        for (count, ns) in [(1000u64, 30_000u64), (10, 20_000), (100, 25_000)] {
            let mut h = LatencyHistogram::new();
            h.record(ns);
            r.metric(&format!("iptables-nft/{count}/end"), &h, "ns")
                .unwrap();
            r.metric(&format!("iptables-nft/{count}/front"), &h, "ns")
                .unwrap();
            r.metric(&format!("nftables/{count}/end"), &h, "ns")
                .unwrap();
        }
        let charts = charts(&[&r]);
        assert_eq!(charts.len(), 2);
        let ChartKind::Lines { lines, log_x, .. } = &charts[0].kind else {
            panic!("not a line chart");
        };
        assert!(*log_x);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].label, "iptables-nft");
        let xs: Vec<f64> = lines[0].points.iter().map(|p| p.0).collect();
        assert_eq!(xs, [10.0, 100.0, 1000.0]);
        assert!((lines[0].points[2].1 - 30_000.0).abs() < 100.0);
    }
}
