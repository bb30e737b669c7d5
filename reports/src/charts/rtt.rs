//! The rtt probe's charts: per agent pair, the UDP round-trip CDF of the
//! native and the overlay path overlaid; and agent x agent heatmaps of the
//! UDP p50 and p99 per path.

use std::collections::{BTreeMap, BTreeSet};

use infraqual_probes::rtt::key::RttMetricKey;
use infraqual_probes::rtt::Kind;
use infraqual_probes::{LatencyHistogram, MetricSummary, ProbeResult};

use super::{cdf, slug, Chart, ChartKind};

/// `region_of` orders the heatmaps' nodes by region, then name, so a
/// fleet's regions are blocks on the diagonal.
pub fn charts(results: &[&ProbeResult], region_of: &BTreeMap<&str, &str>) -> Vec<Chart> {
    let mut charts = Vec::new();
    // pair -> (path, summary) (UDP); decoded one pair at a time below, since
    // a decoded histogram is a quarter megabyte and a fleet has thousands.
    let mut pairs: BTreeMap<(String, String), Vec<(String, &MetricSummary)>> = BTreeMap::new();
    let mut cells: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for r in results {
        for (key, m) in &r.metrics {
            let Ok(RttMetricKey {
                source: src,
                target: dst,
                path,
                kind: Kind::Udp,
            }) = key.parse()
            else {
                continue;
            };
            nodes.insert(src.clone());
            nodes.insert(dst.clone());
            paths.insert(path.clone());
            cells.insert((path.clone(), src.clone(), dst.clone()), (m.p50, m.p99));
            pairs.entry((src, dst)).or_default().push((path, m));
        }
    }
    for ((src, dst), summaries) in &pairs {
        let hists: Vec<(&str, LatencyHistogram)> = summaries
            .iter()
            .filter_map(|(p, m)| Some((p.as_str(), m.histogram().ok()?)))
            .collect();
        if hists.is_empty() {
            continue;
        }
        let lines: Vec<(&str, &LatencyHistogram)> = hists.iter().map(|(p, h)| (*p, h)).collect();
        charts.push(cdf::chart(
            &format!("rtt-cdf-{src}-{dst}"),
            &format!("UDP round trip {src} -> {dst}: CDF per path"),
            "rtt",
            &lines,
        ));
    }
    let mut nodes: Vec<String> = nodes.into_iter().collect();
    // Unlabelled nodes after the labelled ones; BTreeSet gave name order.
    nodes.sort_by_key(|n| {
        (
            region_of.get(n.as_str()).is_none(),
            region_of.get(n.as_str()).copied(),
        )
    });
    if nodes.len() < 2 {
        return charts;
    }
    for path in &paths {
        for (stat, pick) in [("p50", 0usize), ("p99", 1)] {
            let values: Vec<Vec<Option<f64>>> = nodes
                .iter()
                .map(|src| {
                    nodes
                        .iter()
                        .map(|dst| {
                            cells
                                .get(&(path.clone(), src.clone(), dst.clone()))
                                .map(|&(p50, p99)| if pick == 0 { p50 } else { p99 } as f64)
                        })
                        .collect()
                })
                .collect();
            charts.push(Chart {
                id: slug(&format!("rtt-heatmap-{path}-{stat}")),
                title: format!("UDP round trip {stat} on the {path} path (row: from, column: to)"),
                probe: "rtt".into(),
                kind: ChartKind::Heatmap {
                    rows: nodes.clone(),
                    cols: nodes.clone(),
                    values_ns: values,
                },
            });
        }
    }
    charts
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::LatencyHistogram;

    #[test]
    fn cdf_per_pair_and_heatmaps_per_path_and_statistic() {
        let mut h = LatencyHistogram::new();
        for v in [20_000u64, 25_000, 30_000] {
            h.record(v);
        }
        let mut a = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        a.metric("a->b/native/udp", &h, "ns").unwrap();
        a.metric("a->b/overlay/udp", &h, "ns").unwrap();
        a.metric("a->b/overlay/tcp_rr", &h, "ns").unwrap();
        let mut b = ProbeResult::new(infraqual_probes::rtt::NAME, "b");
        b.metric("b->a/overlay/udp", &h, "ns").unwrap();
        let charts = charts(&[&a, &b], &BTreeMap::new());
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "rtt-cdf-a-b",
                "rtt-cdf-b-a",
                "rtt-heatmap-native-p50",
                "rtt-heatmap-native-p99",
                "rtt-heatmap-overlay-p50",
                "rtt-heatmap-overlay-p99"
            ]
        );
        let ChartKind::Heatmap { values_ns, .. } = &charts[4].kind else {
            panic!()
        };
        assert_eq!(values_ns[0][0], None);
        let p50 = values_ns[0][1].unwrap();
        assert!((p50 - 25_000.0).abs() < 50.0, "{p50}");
        assert!(values_ns[1][0].is_some());
        for c in &charts {
            super::super::draw::svg(c).unwrap();
        }
    }

    #[test]
    fn heatmap_nodes_are_grouped_by_region_then_name_and_a_fleet_draws() {
        let mut h = LatencyHistogram::new();
        h.record(1_000_000);
        // 120 nodes in two regions whose names interleave alphabetically.
        let names: Vec<String> = (0..120).map(|i| format!("n{i:03}")).collect();
        let region_of: BTreeMap<&str, &str> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), if i % 2 == 0 { "oslo" } else { "frankfurt" }))
            .collect();
        let mut results = Vec::new();
        for (i, src) in names.iter().enumerate() {
            let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, src);
            for k in 1..=5 {
                let dst = &names[(i + k * 7) % names.len()];
                r.metric(&format!("{src}->{dst}/native/udp"), &h, "ns")
                    .unwrap();
            }
            results.push(r);
        }
        let refs: Vec<&ProbeResult> = results.iter().collect();
        let charts = charts(&refs, &region_of);
        let heatmap = charts
            .iter()
            .find(|c| c.id == "rtt-heatmap-native-p50")
            .unwrap();
        let ChartKind::Heatmap { rows, cols, .. } = &heatmap.kind else {
            panic!()
        };
        assert_eq!(rows, cols);
        let regions: Vec<&str> = rows.iter().map(|n| region_of[n.as_str()]).collect();
        assert!(
            regions[..60].iter().all(|r| *r == "frankfurt"),
            "{regions:?}"
        );
        assert!(regions[60..].iter().all(|r| *r == "oslo"), "{regions:?}");
        assert_eq!(rows[0], "n001");
        assert_eq!(rows[60], "n000");
        let svg = super::super::draw::svg(heatmap).unwrap();
        let labels = svg.matches("from n").count();
        assert!(
            (1..=super::super::heatmap::MAX_LABELS).contains(&labels),
            "{labels} row labels for 120 rows"
        );
    }
}
