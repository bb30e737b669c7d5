//! The top of report.html: the answers (one short answer per question, its
//! link and its chart), then the checks: a node-by-check matrix for a fleet,
//! one table row per check for a single node.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use infraqual_probes::{Status, Verdict};

use super::answers::{self, Answer};
use super::html::RenderedChart;
use super::labels;
use crate::bundle::RunRecord;
use crate::format;
use crate::markup::{self, badge, escape, table_start};

pub fn status_badge(s: Status) -> String {
    badge(s.as_str(), &s.as_str().to_uppercase())
}

/// Writes the answers block and returns the ids of the charts it showed,
/// so the sections below do not draw them again.
pub fn write_answers(run: &RunRecord, charts: &[RenderedChart], h: &mut String) -> Vec<String> {
    let ids: Vec<&str> = charts.iter().map(|c| c.chart.id.as_str()).collect();
    let list = answers::answers(run, &ids);
    h.push_str("<section id=\"answers\"><h2>Answers</h2>");
    if list.is_empty() {
        h.push_str("<p>This run measured none of the questions below; see the checks.</p>");
    }
    let mut shown = Vec::new();
    for a in &list {
        answer(a, charts, h);
        if let Some(id) = &a.chart {
            shown.push(id.clone());
        }
    }
    let missing = answers::unanswered(&list);
    if !missing.is_empty() {
        let _ = write!(
            h,
            "<p class=\"meta\">Not measured in this run: {}</p>",
            escape(&missing.join(" "))
        );
    }
    h.push_str("</section>");
    shown
}

fn answer(a: &Answer, charts: &[RenderedChart], h: &mut String) {
    let _ = write!(
        h,
        "<div class=\"answer\"><h3>{q}</h3><p>{b} {t} <a href=\"#{s}\">details</a></p>",
        q = escape(a.question),
        b = a.status.map(status_badge).unwrap_or_default(),
        t = escape(&a.text),
        s = escape(&a.section),
    );
    if let Some(rc) = a
        .chart
        .as_ref()
        .and_then(|id| charts.iter().find(|c| &c.chart.id == id))
    {
        markup::figure(
            h,
            &format!("chart-{}", rc.chart.id),
            &rc.svg,
            &escape(&rc.chart.title),
        );
    }
    h.push_str("</div>");
}

/// The checks of every node: a matrix (check by node) when there are
/// several nodes, else a table with threshold and note.
pub fn write_checks(run: &RunRecord, h: &mut String) {
    h.push_str("<h2 id=\"checks\">Checks</h2>");
    let mut rows: BTreeMap<&str, BTreeMap<&str, &Verdict>> = BTreeMap::new();
    for (node, r) in run.results() {
        for v in &r.verdicts {
            rows.entry(v.check.as_str())
                .or_default()
                .insert(node.name.as_str(), v);
        }
    }
    if run.nodes.len() > 1 {
        matrix(run, &rows, h);
    } else {
        single(&rows, h);
    }
    for node in &run.nodes {
        for e in &node.errors {
            let _ = write!(
                h,
                "<div class=\"error\">{} on {}: {}</div>",
                escape(&labels::check(&format!(
                    "{}.run",
                    e.probe.as_deref().unwrap_or("node")
                ))),
                escape(&node.name),
                escape(&e.message)
            );
        }
    }
}

fn observed(v: &Verdict) -> String {
    v.observed
        .map(|x| format::value(x, &v.unit))
        .unwrap_or_else(|| "-".into())
}

fn matrix(run: &RunRecord, rows: &BTreeMap<&str, BTreeMap<&str, &Verdict>>, h: &mut String) {
    let mut header = vec!["check".to_string()];
    header.extend(run.nodes.iter().map(|n| n.name.clone()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table_start(h, &header);
    for (check, by_node) in rows {
        let _ = write!(h, "<tr><td>{}</td>", escape(&labels::check(check)));
        for node in &run.nodes {
            match by_node.get(node.name.as_str()) {
                Some(v) => {
                    let _ = write!(
                        h,
                        "<td title=\"{}\">{} {}</td>",
                        escape(&labels::prose(&v.note)),
                        status_badge(v.status),
                        escape(&observed(v))
                    );
                }
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"{}\">no checks were run</td></tr>",
            run.nodes.len() + 1
        );
    }
    h.push_str("</table>");
}

fn single(rows: &BTreeMap<&str, BTreeMap<&str, &Verdict>>, h: &mut String) {
    table_start(h, &["check", "observed", "limit", "status", "why"]);
    for (check, by_node) in rows {
        for v in by_node.values() {
            let limit = v
                .threshold
                .map(|x| format::value(x, &v.unit))
                .unwrap_or_else(|| "-".into());
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&labels::check(check)),
                escape(&observed(v)),
                escape(&limit),
                status_badge(v.status),
                escape(&labels::prose(&v.note))
            );
        }
    }
    if rows.is_empty() {
        h.push_str("<tr><td colspan=\"5\">no checks were run</td></tr>");
    }
    h.push_str("</table>");
}
