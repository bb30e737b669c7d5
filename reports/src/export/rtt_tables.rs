//! The rtt section's tables in report.html: UDP loss per path, and, when
//! agents carry a `region` label, the round trip per region pair with the
//! application impact line ("N serial round trips ... cost X ms more").

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::bundle::RunRecord;
use crate::markup::{escape, table_start};

/// Serial round trips in the impact line (ten database calls per request).
pub const SERIAL_ROUND_TRIPS: u32 = 10;

pub fn write(run: &RunRecord, h: &mut String) {
    loss_table(run, h);
    region_table(run, h);
}

fn loss_table(run: &RunRecord, h: &mut String) {
    let mut rows = Vec::new();
    for (_, r) in run.results().filter(|(_, r)| r.probe == "rtt") {
        if let Some(Value::Object(paths)) = r.facts.get("loss") {
            for (path, v) in paths {
                rows.push((path.clone(), v.clone()));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    h.push_str("<h3>UDP loss per path</h3>");
    table_start(
        h,
        &[
            "path",
            "sent",
            "received",
            "lost",
            "loss",
            "late (reordered)",
            "duplicates",
        ],
    );
    for (path, v) in rows {
        let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.3} %</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&path),
            n("sent"),
            n("received"),
            n("lost"),
            n("loss_pct"),
            n("late"),
            n("duplicates")
        );
    }
    h.push_str("</table>");
}

/// Mean of the UDP p50s per (source region, destination region), on the
/// overlay path where measured (what pods see), else native.
fn region_table(run: &RunRecord, h: &mut String) {
    let region_of: BTreeMap<&str, &str> = run
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.labels.get("region")?.as_str())))
        .collect();
    let mut sums: BTreeMap<(String, String, String), (f64, u32)> = BTreeMap::new();
    for (_, r) in run.results().filter(|(_, r)| r.probe == "rtt") {
        for (key, m) in &r.metrics {
            let Some((pair, rest)) = key.split_once('/') else {
                continue;
            };
            let Some((path, "udp")) = rest.split_once('/') else {
                continue;
            };
            let Some((src, dst)) = pair.split_once("->") else {
                continue;
            };
            let (Some(a), Some(b)) = (region_of.get(src), region_of.get(dst)) else {
                continue;
            };
            let e = sums
                .entry((path.to_string(), a.to_string(), b.to_string()))
                .or_insert((0.0, 0));
            e.0 += m.p50 as f64;
            e.1 += 1;
        }
    }
    let has_overlay = sums.keys().any(|(p, _, _)| p == "overlay");
    let path = if has_overlay { "overlay" } else { "native" };
    let p50: BTreeMap<(String, String), f64> = sums
        .into_iter()
        .filter(|((p, _, _), _)| p == path)
        .map(|((_, a, b), (sum, n))| ((a, b), sum / f64::from(n)))
        .collect();
    let regions: std::collections::BTreeSet<&String> =
        p50.keys().flat_map(|(a, b)| [a, b]).collect();
    if regions.len() < 2 {
        return;
    }
    let _ = write!(
        h,
        "<h3>Round trip per region pair (UDP p50, {path} path)</h3><table><tr><th>from</th><th>to</th><th>p50</th></tr>"
    );
    for ((a, b), v) in &p50 {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.3} ms</td></tr>",
            escape(a),
            escape(b),
            v / 1e6
        );
    }
    h.push_str("</table>");
    for dst in &regions {
        let mut from: Vec<(&String, f64)> = p50
            .iter()
            .filter(|((_, b), _)| &b == dst)
            .map(|((a, _), v)| (a, *v))
            .collect();
        from.sort_by(|x, y| x.1.total_cmp(&y.1));
        if let (Some(near), Some(far)) = (from.first(), from.last()) {
            if near.0 != far.0 {
                let extra_ms = f64::from(SERIAL_ROUND_TRIPS) * (far.1 - near.1) / 1e6;
                let _ = write!(
                    h,
                    "<p class=\"impact\">{SERIAL_ROUND_TRIPS} serial round trips to {} from {} cost {:.1} ms more than from {}.</p>",
                    escape(dst),
                    escape(far.0),
                    extra_ms,
                    escape(near.0)
                );
            }
        }
    }
}
