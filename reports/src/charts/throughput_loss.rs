//! throughput: UDP loss against the offered packet rate, one line per
//! source, target and path, log x, from `facts.udp["<src>-><dst>/<path>/udp"]`
//! (each step's `offered_pps` and `loss_pct`): where the path, or the
//! receiver's CPU, starts to drop packets.

use std::collections::BTreeMap;

use infraqual_probes::ProbeResult;
use serde_json::Value;

use super::services_first_packet::sorted_lines;
use super::{Chart, ChartKind};

pub fn chart(results: &[&ProbeResult]) -> Option<Chart> {
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in results {
        let Some(udp) = r.facts.get("udp").and_then(Value::as_object) else {
            continue;
        };
        for (key, steps) in udp {
            let label = key.strip_suffix("/udp").unwrap_or(key).to_string();
            let points = steps.as_array().into_iter().flatten().filter_map(|s| {
                Some((
                    s.get("offered_pps")?.as_f64()?,
                    s.get("loss_pct")?.as_f64()?,
                ))
            });
            lines.entry(label).or_default().extend(points);
        }
    }
    lines.retain(|_, points| !points.is_empty());
    if lines.is_empty() {
        return None;
    }
    Some(Chart {
        id: "throughput-udp-loss".into(),
        title: "throughput: UDP loss against the offered packet rate".into(),
        probe: "throughput".into(),
        kind: ChartKind::Lines {
            x_label: "offered packets per second".into(),
            y_label: "loss (%)".into(),
            log_x: true,
            log_y: false,
            lines: sorted_lines(lines),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_path_with_loss_against_offered_rate() {
        let mut r = ProbeResult::new(infraqual_probes::throughput::NAME, "a");
        r.fact(
            "udp",
            serde_json::json!({
                "a->b/native/udp": [{"offered_pps": 10000, "loss_pct": 0.0}, {"offered_pps": 100000, "loss_pct": 3.5}],
                "a->b/overlay/udp": [{"offered_pps": 10000, "loss_pct": 1.0}],
            }),
        );
        let drawn = chart(&[&r]).unwrap();
        let ChartKind::Lines { lines, log_x, .. } = &drawn.kind else {
            panic!("not a line chart");
        };
        assert!(*log_x);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].label, "a->b/native");
        assert_eq!(lines[0].points, [(10000.0, 0.0), (100000.0, 3.5)]);
        assert!(chart(&[&ProbeResult::new(infraqual_probes::throughput::NAME, "a")]).is_none());
    }
}
