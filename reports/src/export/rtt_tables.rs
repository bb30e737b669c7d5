//! The rtt section's tables in report.html: UDP loss per path, and, when
//! agents carry a `region` label, the round trip per region pair with the
//! application impact line ("N serial round trips ... cost X ms more").

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::bundle::RunRecord;
use crate::format;
use crate::markup::{escape, table_start};
use crate::regions::{region_rtts, serial_costs, SerialBasis};

pub fn write(run: &RunRecord, h: &mut String) {
    super::rtt_schedule::write(run, h);
    loss_table(run, h);
    region_table(run, h);
}

fn loss_table(run: &RunRecord, h: &mut String) {
    let mut rows = Vec::new();
    for (_, r) in run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::rtt::NAME)
    {
        if let Some(Value::Object(paths)) = r.facts.get("loss") {
            for (path, v) in paths {
                rows.push((path.clone(), v.clone()));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let lost: f64 = rows
        .iter()
        .filter_map(|(_, v)| v.get("lost").and_then(Value::as_f64))
        .sum();
    let sent: f64 = rows
        .iter()
        .filter_map(|(_, v)| v.get("sent").and_then(Value::as_f64))
        .sum();
    // The table is long on a fleet; its sum is what a reader needs first.
    let _ = write!(
        h,
        "<h3>UDP loss</h3><details><summary>{} of {} UDP ping-pongs lost over {} paths: \
         the table per path</summary>",
        lost,
        sent,
        rows.len()
    );
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
    h.push_str("</table></details>");
}

/// The region pairs on the serial basis (see [`SerialBasis::of`]), headed
/// by the rule they were computed by, and the serial round-trip cost.
fn region_table(run: &RunRecord, h: &mut String) {
    let all = region_rtts(run);
    let Some(basis) = SerialBasis::of(&all) else {
        return;
    };
    let rows = basis.rows(&all);
    let regions: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| [r.from.as_str(), r.to.as_str()])
        .collect();
    if regions.len() < 2 {
        return;
    }
    let _ = write!(
        h,
        "<h3 id=\"regions\">Round trip per region pair ({})</h3>",
        escape(&basis.source())
    );
    table_start(h, &["from", "to", "round trips", "p50", "p99"]);
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(&r.from),
            escape(&r.to),
            r.count,
            escape(&format::duration_ns(r.p50_ns as f64)),
            escape(&format::duration_ns(r.p99_ns as f64)),
        );
    }
    h.push_str("</table>");
    for cost in serial_costs(&all) {
        let _ = write!(h, "<p class=\"impact\">{}.</p>", escape(&cost.sentence()));
    }
}
