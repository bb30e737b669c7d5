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

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}\
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:.1rem .6rem;border-radius:.3rem;font-weight:bold;color:#fff}\
.pass{background:#2e7d32}.warn{background:#ef6c00}.fail{background:#c62828}.skip{background:#757575}.incomplete{background:#6a1b9a}\
.warning{background:#fff8e1;border-left:4px solid #ef6c00;padding:.3rem .6rem;margin:.3rem 0}\
.error{background:#ffebee;border-left:4px solid #c62828;padding:.3rem .6rem;margin:.3rem 0}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
.meta{color:#555}";

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
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
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>infraqual: {name} {id}</title><style>{STYLE}</style></head><body>\
             <h1>infraqual report: {name} {verdict}</h1>\
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
        h.push_str("</body></html>\n");
        h
    }

    fn verdicts(&self, run: &RunRecord, h: &mut String) {
        h.push_str(
            "<h2 id=\"verdicts\">Verdicts</h2><table><tr><th>node</th><th>check</th>\
                    <th>observed</th><th>threshold</th><th>status</th><th>note</th></tr>",
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
                let _ = write!(
                    h,
                    "<figure id=\"chart-{}\">{}<figcaption>{} (also plots/{}.svg and .png)</figcaption></figure>",
                    escape(&rc.chart.id),
                    strip_xml_prolog(&rc.svg),
                    escape(&rc.chart.title),
                    escape(&rc.chart.id)
                );
            }
        }
    }
}

fn strip_xml_prolog(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
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
        h.push_str(
            "<table><tr><th>metric</th><th>count</th><th>min</th><th>p50</th><th>p90</th>\
                    <th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>",
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
    h.push_str("<table><tr><th>fact</th><th>value</th></tr>");
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
            let mut cols: Vec<&String> = Vec::new();
            for item in items {
                if let Value::Object(map) = item {
                    for k in map.keys() {
                        if !cols.contains(&k) {
                            cols.push(k);
                        }
                    }
                }
            }
            h.push_str("<table><tr>");
            for c in &cols {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>");
            for item in items {
                h.push_str("<tr>");
                for c in &cols {
                    let cell = item.get(c.as_str()).unwrap_or(&Value::Null);
                    let _ = write!(h, "<td>{}</td>", escape(&format::fact(cell)));
                }
                h.push_str("</tr>");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
