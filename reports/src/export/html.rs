//! report.html: one self-contained file (inline CSS and SVG, no scripts, no
//! network), readable in any browser or saved as a ticket attachment.

use std::fmt::Write as _;

use infraqual_probes::probe::ReportPart;
use infraqual_probes::{ProbeName, ProbeResult, Status};
use serde_json::Value;

use super::{Artifact, Exporter};
use crate::bundle::{NodeRecord, RunRecord, RunVerdict};
use crate::charts::Chart;
use crate::error::ReportError;
use crate::format;
use crate::markup::{self, badge, escape, table_start};

pub struct RenderedChart {
    pub chart: Chart,
    pub svg: String,
}

pub struct HtmlExporter<'a> {
    pub charts: &'a [RenderedChart],
}

impl Exporter for HtmlExporter<'_> {
    fn export(&self, run: &RunRecord) -> Result<Vec<Artifact>, ReportError> {
        Ok(vec![Artifact {
            relative_path: "report.html".into(),
            bytes: self.page(run).into_bytes(),
        }])
    }
}

fn status_badge(s: Status) -> String {
    badge(s.as_str(), &s.as_str().to_uppercase())
}

impl HtmlExporter<'_> {
    fn page(&self, run: &RunRecord) -> String {
        let mut h = String::new();
        let plan_name = run
            .plan
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("run");
        let verdict = match run.verdict {
            RunVerdict::Pass => badge("pass", "PASS"),
            RunVerdict::Fail => badge("fail", "FAIL"),
            RunVerdict::Incomplete => badge("incomplete", "INCOMPLETE"),
        };
        markup::document_start(&mut h, &format!("infraqual: {plan_name} {}", run.run_id));
        let _ = write!(
            h,
            "<h1>infraqual report: {name} {verdict}</h1>\
             <p class=\"meta\">run <code>{id}</code>, started {start}, finished {end}; \
             profile <code>{profile}</code>; infraqual {ver}</p>",
            name = escape(plan_name),
            id = escape(&run.run_id),
            start = escape(&run.started_at),
            end = escape(run.finished_at.as_deref().unwrap_or("(not finished)")),
            profile = escape(&run.profile.name),
            ver = escape(&run.tool_version),
        );
        self.verdicts(run, &mut h);
        for node in &run.nodes {
            self.node(node, &mut h);
        }
        self.probe_sections(run, &mut h);
        crate::etcd::html::section(run, &run.profile, &mut h);
        markup::document_end(&mut h);
        h
    }

    fn verdicts(&self, run: &RunRecord, h: &mut String) {
        h.push_str("<h2 id=\"verdicts\">Verdicts</h2>");
        table_start(
            h,
            &["node", "check", "observed", "threshold", "status", "note"],
        );
        let mut any = false;
        for (node, result) in run.results() {
            for v in &result.verdicts {
                any = true;
                let num = |x: Option<f64>| {
                    x.map(|x| format::value(x, &v.unit))
                        .unwrap_or_else(|| "-".into())
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                     <td>{}</td><td>{}</td></tr>",
                    escape(&node.name),
                    escape(&v.check),
                    escape(&num(v.observed)),
                    escape(&num(v.threshold)),
                    status_badge(v.status),
                    escape(&v.note)
                );
            }
        }
        for node in &run.nodes {
            for e in &node.errors {
                any = true;
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>-</td><td>-</td><td>{}</td><td>{}</td></tr>",
                    escape(&node.name),
                    escape(e.probe.as_deref().unwrap_or("node")),
                    badge("fail", "ERROR"),
                    escape(&e.message)
                );
            }
        }
        if !any {
            h.push_str("<tr><td colspan=\"6\">no checks were run</td></tr>");
        }
        h.push_str("</table>");
    }

    fn node(&self, node: &NodeRecord, h: &mut String) {
        let _ = write!(h, "<h2 id=\"node-{0}\">Node {0}</h2>", escape(&node.name));
        if !node.labels.is_empty() {
            let labels: Vec<String> = node
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = write!(
                h,
                "<p class=\"meta\">labels: {}</p>",
                escape(&labels.join(", "))
            );
        }
        for e in &node.errors {
            let _ = write!(
                h,
                "<div class=\"error\">{}: {}</div>",
                escape(e.probe.as_deref().unwrap_or("node")),
                escape(&e.message)
            );
        }
        let Some(inv) = &node.inventory else {
            h.push_str("<p>No inventory.</p>");
            return;
        };
        h.push_str("<h3>Inventory</h3>");
        facts_table(&inv.facts, h);
        warnings(inv, h);
    }

    fn probe_sections(&self, run: &RunRecord, h: &mut String) {
        let mut probes: Vec<ProbeName> = Vec::new();
        for node in &run.nodes {
            for r in &node.results {
                if !probes.contains(&r.probe) {
                    probes.push(r.probe);
                }
            }
        }
        for probe in probes {
            let _ = write!(
                h,
                "<h2 id=\"probe-{0}\">Probe {0}</h2>",
                escape(probe.as_str())
            );
            for node in &run.nodes {
                for r in node.results.iter().filter(|r| r.probe == probe) {
                    result_section(node, r, h);
                }
            }
            if probe
                .descriptor()
                .report_parts
                .contains(&ReportPart::RttTables)
            {
                super::rtt_tables::write(run, h);
            }
            for rc in self
                .charts
                .iter()
                .filter(|c| c.chart.probe == probe.as_str())
            {
                let caption = escape(&format!(
                    "{} (also plots/{}.svg and .png)",
                    rc.chart.title, rc.chart.id
                ));
                markup::figure(h, &format!("chart-{}", rc.chart.id), &rc.svg, &caption);
            }
        }
    }
}

fn result_section(node: &NodeRecord, r: &ProbeResult, h: &mut String) {
    let _ = write!(
        h,
        "<h3>{} on {}</h3><p class=\"meta\">started {}, {} ms{}</p>",
        escape(r.probe.as_str()),
        escape(&node.name),
        escape(&r.started_at),
        r.duration_ms,
        if r.params.is_empty() {
            String::new()
        } else {
            format!(
                "; parameters: <code>{}</code>",
                escape(&Value::Object(r.params.clone()).to_string())
            )
        }
    );
    if !r.metrics.is_empty() {
        table_start(
            h,
            &[
                "metric", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
            ],
        );
        for (name, m) in &r.metrics {
            let f = |v: f64| escape(&format::value(v, &m.unit));
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(name),
                m.count,
                f(m.min as f64),
                f(m.p50 as f64),
                f(m.p90 as f64),
                f(m.p99 as f64),
                f(m.p999 as f64),
                f(m.max as f64),
                f(m.mean)
            );
        }
        h.push_str("</table>");
    }
    if !r.facts.is_empty() {
        facts_table(&r.facts, h);
    }
    warnings(r, h);
}

fn warnings(r: &ProbeResult, h: &mut String) {
    for w in &r.warnings {
        let _ = write!(h, "<div class=\"warning\">{}</div>", escape(w));
    }
}

/// Facts as a two-column table; a list of objects (disks, NICs) becomes a
/// nested table with one row per item.
fn facts_table(facts: &serde_json::Map<String, Value>, h: &mut String) {
    table_start(h, &["fact", "value"]);
    for (k, v) in facts {
        let _ = write!(h, "<tr><td>{}</td><td>", escape(k));
        fact_cell(v, h);
        h.push_str("</td></tr>");
    }
    h.push_str("</table>");
}

fn fact_cell(v: &Value, h: &mut String) {
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut cols: Vec<&str> = Vec::new();
            for item in items {
                if let Value::Object(map) = item {
                    for k in map.keys() {
                        if !cols.contains(&k.as_str()) {
                            cols.push(k);
                        }
                    }
                }
            }
            table_start(h, &cols);
            for item in items {
                let cells: Vec<String> = cols
                    .iter()
                    .map(|c| format::fact(item.get(*c).unwrap_or(&Value::Null)))
                    .collect();
                markup::text_row(h, &cells);
            }
            h.push_str("</table>");
        }
        Value::Object(map) if !map.is_empty() => {
            h.push_str("<table>");
            for (k, child) in map {
                let _ = write!(h, "<tr><td>{}</td><td>", escape(k));
                fact_cell(child, h);
                h.push_str("</td></tr>");
            }
            h.push_str("</table>");
        }
        other => h.push_str(&escape(&format::fact(other))),
    }
}
