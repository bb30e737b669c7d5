//! Timelines from a result's `series`. A key `group/name` joins the other
//! series of its group on one chart (e.g. `pct/steal`, `pct/lost`); a plain
//! key gets a chart of its own. Nodes are overlaid.

use std::collections::BTreeMap;

use infraqual_probes::ProbeResult;

use super::{slug, Chart, ChartKind, Line, Reference};

pub fn charts(probe: &str, results: &[&ProbeResult]) -> Vec<Chart> {
    let multi_node = results.len() > 1;
    let mut groups: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    for r in results {
        for (key, points) in &r.series {
            if points.is_empty() {
                continue;
            }
            let (group, name) = key.split_once('/').unwrap_or((key.as_str(), key.as_str()));
            let label = match (multi_node, group == name) {
                (true, true) => r.node.clone(),
                (true, false) => format!("{} {name}", r.node),
                (false, _) => name.to_string(),
            };
            groups.entry(group.to_string()).or_default().push(Line {
                label,
                points: points.clone(),
            });
        }
    }
    groups
        .into_iter()
        .map(|(group, lines)| {
            let reference = reference_for(probe, &group, results);
            Chart {
                id: slug(&format!("{probe}-timeline-{group}")),
                title: format!("{probe}: {} per second", group.replace('_', " ")),
                probe: probe.to_string(),
                kind: ChartKind::Timeline {
                    y_label: y_label(&group),
                    lines,
                    reference,
                },
            }
        })
        .collect()
}

/// Units are read from the key's suffix (`_ns`, `_pct`).
fn y_label(group: &str) -> String {
    if group.ends_with("_ns") {
        "latency".into()
    } else if group.ends_with("pct") {
        "% of wall time".into()
    } else {
        group.replace('_', " ")
    }
}

/// A per-second p99 timeline shows the p99 threshold of its metric.
fn reference_for(probe: &str, group: &str, results: &[&ProbeResult]) -> Option<Reference> {
    if !group.ends_with("_ns") {
        return None;
    }
    results.iter().find_map(|r| {
        r.verdicts.iter().find_map(|v| {
            let pct = v.check.rsplit('.').next()?;
            (v.check.starts_with(probe) && group.contains(pct) && v.unit == "ns")
                .then_some(v.threshold)
                .flatten()
                .map(|value| Reference {
                    value,
                    label: format!("{} threshold", v.check),
                })
        })
    })
}
