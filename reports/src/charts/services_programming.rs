//! services: time to program N Services in one batch (iptables-restore /
//! nft -f) against N, log x, one line per proxy mode, from
//! `facts.programming_ms["<mode>/<count>"]`.

use std::collections::BTreeMap;

use infraqual_probes::ProbeResult;

use super::services_first_packet::sorted_lines;
use super::{Chart, ChartKind};

pub fn chart(results: &[&ProbeResult]) -> Option<Chart> {
    let multi_node = results.len() > 1;
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in results {
        let Some(times) = r.facts.get("programming_ms").and_then(|v| v.as_object()) else {
            continue;
        };
        for (key, ms) in times {
            let (Some((mode, count)), Some(ms)) = (key.split_once('/'), ms.as_f64()) else {
                continue;
            };
            let Ok(count) = count.parse::<f64>() else {
                continue;
            };
            let label = if multi_node {
                format!("{} {mode}", r.node)
            } else {
                mode.to_string()
            };
            lines.entry(label).or_default().push((count, ms));
        }
    }
    if lines.is_empty() {
        return None;
    }
    Some(Chart {
        id: "services-programming".into(),
        title: "services: time to program N services in one batch".into(),
        probe: "services".into(),
        kind: ChartKind::Lines {
            x_label: "services".into(),
            y_label: "programming time (ms)".into(),
            log_x: true,
            log_y: true,
            lines: sorted_lines(lines),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_programming_ms_per_mode() {
        let mut r = ProbeResult::new(infraqual_probes::services::NAME, "local");
        r.fact(
            "programming_ms",
            serde_json::json!({"nftables/100": 20.5, "nftables/10": 5.0, "iptables-nft/10": 7.0}),
        );
        let drawn = chart(&[&r]).unwrap();
        let ChartKind::Lines { lines, .. } = &drawn.kind else {
            panic!("not a line chart");
        };
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].label, "nftables");
        assert_eq!(lines[1].points, [(10.0, 5.0), (100.0, 20.5)]);
        assert!(chart(&[&ProbeResult::new(infraqual_probes::services::NAME, "local")]).is_none());
    }
}
