//! Timelines from a result's `series`. A key `group/name` joins the other
//! series of its group on one chart (e.g. `pct/steal`, `pct/lost`); a plain
//! key gets a chart of its own. Nodes are overlaid.

use std::collections::BTreeMap;

use infraqual_probes::{ProbeResult, Profile};

use super::{slug, Chart, ChartKind, Line, Reference};

pub fn charts(probe: &str, results: &[&ProbeResult], profile: &Profile) -> Vec<Chart> {
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
                (true, false) => format!("{} {}", r.node, series_words(name)),
                (false, _) => series_words(name),
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
            let references = references_for(profile, probe, &group);
            Chart {
                id: slug(&format!("{probe}-timeline-{group}")),
                title: title(probe, &group),
                probe: probe.to_string(),
                kind: ChartKind::Timeline {
                    y_label: y_label(&group),
                    lines,
                    references,
                },
            }
        })
        .collect()
}

/// Soak timelines (`interval_*` groups) have a point per interval, the
/// probes' own a point per second.
fn title(probe: &str, group: &str) -> String {
    match group.strip_prefix("interval_") {
        Some(rest) => format!("{probe}: {} per soak interval", series_words(rest)),
        None => format!("{probe}: {} per second", series_words(group)),
    }
}

/// A series key in words, without what the chart says already:
/// `per_second_p99_ns` is `p99`, `guest_wait` is `guest wait`, the group
/// `pct` is `share of time`.
fn series_words(key: &str) -> String {
    if key == "pct" {
        return "share of time".into();
    }
    let key = key.strip_prefix("per_second_").unwrap_or(key);
    let key = key
        .strip_suffix("_ns")
        .or_else(|| key.strip_suffix("_pct"))
        .unwrap_or(key);
    key.replace('_', " ")
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

/// A per-second percentile timeline (`per_second_p99_ns`) shows the
/// thresholds of the checks on that percentile of the probe's metrics.
fn references_for(profile: &Profile, probe: &str, group: &str) -> Vec<Reference> {
    if !group.ends_with("_ns") {
        return Vec::new();
    }
    profile
        .checks
        .iter()
        .filter(|(check, t)| {
            let stat = check.rsplit('.').next().unwrap_or("");
            check.starts_with(&format!("{probe}.")) && t.unit == "ns" && group.contains(stat)
        })
        .flat_map(|(check, t)| {
            let stat = check.rsplit('.').next().unwrap_or("").to_string();
            t.warn
                .map(|w| Reference {
                    value: w,
                    label: format!("{stat} warn"),
                    fail: false,
                })
                .into_iter()
                .chain(std::iter::once(Reference {
                    value: t.fail,
                    label: format!("{stat} fail"),
                    fail: true,
                }))
        })
        .collect()
}
