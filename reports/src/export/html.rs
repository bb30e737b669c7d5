//! report.html: one self-contained file (inline CSS and SVG, no scripts, no
//! network), readable in any browser or saved as a ticket attachment.

use std::fmt::Write as _;

use infraqual_probes::probe::ReportPart;
use infraqual_probes::{ProbeName, ProbeResult};
use serde_json::Value;

use super::{labels, summary};
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

impl HtmlExporter<'_> {
    /// The page, one section function each: answers, checks, one section
    /// per probe, the machines. A new section is one more call here.
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
             <p class=\"meta\">run {id}, started {start}, finished {end}; \
             threshold profile {profile}; infraqual {ver}</p>",
            name = escape(plan_name),
            id = escape(&run.run_id),
            start = escape(&run.started_at),
            end = escape(run.finished_at.as_deref().unwrap_or("(not finished)")),
            profile = escape(&run.profile.name),
            ver = escape(&run.tool_version),
        );
        let shown = summary::write_answers(run, self.charts, &mut h);
        summary::write_checks(run, &mut h);
        self.probe_sections(run, &shown, &mut h);
        crate::etcd::html::section(run, &run.profile, &mut h);
        machines(run, &mut h);
        markup::document_end(&mut h);
        h
    }

    fn probe_sections(&self, run: &RunRecord, shown: &[String], h: &mut String) {
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
                "<h2 id=\"probe-{0}\">{0}: {1}</h2>",
                escape(probe.as_str()),
                escape(probe.descriptor().about)
            );
            for node in &run.nodes {
                for r in node.results.iter().filter(|r| r.probe == probe) {
                    result_section(run, node, r, h);
                }
            }
            if probe
                .descriptor()
                .report_parts
                .contains(&ReportPart::RttTables)
            {
                super::rtt_tables::write(run, h);
            }
            h.push_str("<div class=\"charts\">");
            for rc in self
                .charts
                .iter()
                .filter(|c| c.chart.probe == probe.as_str() && !shown.contains(&c.chart.id))
            {
                let caption = escape(&format!(
                    "{} (also plots/{}.svg and .png)",
                    rc.chart.title, rc.chart.id
                ));
                markup::figure(h, &format!("chart-{}", rc.chart.id), &rc.svg, &caption);
            }
            h.push_str("</div>");
        }
    }
}

/// Latency tables longer than this are folded: the charts carry them.
const OPEN_METRIC_ROWS: usize = 6;

fn result_section(run: &RunRecord, node: &NodeRecord, r: &ProbeResult, h: &mut String) {
    if run.nodes.len() > 1 {
        let _ = write!(
            h,
            "<h3>{} on {}</h3>",
            escape(r.probe.as_str()),
            escape(&node.name)
        );
    }
    key_facts(r, h);
    if !r.metrics.is_empty() {
        if r.metrics.len() > OPEN_METRIC_ROWS {
            let _ = write!(
                h,
                "<details><summary>Latency percentiles of {} measurements</summary>",
                r.metrics.len()
            );
            metrics_table(r, h);
            h.push_str("</details>");
        } else {
            metrics_table(r, h);
        }
        super::rounds::table(r, h);
    }
    warnings(r, h);
    raw_details(r, &node.name, h);
}

fn metrics_table(r: &ProbeResult, h: &mut String) {
    table_start(
        h,
        &[
            "measured", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
        ],
    );
    for (name, m) in &r.metrics {
        let f = |v: f64| escape(&format::value(v, &m.unit));
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&labels::metric(name)),
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

/// The facts a reader looks for, by their human names, with what they mean.
fn key_facts(r: &ProbeResult, h: &mut String) {
    let rows: Vec<[String; 3]> = labels::facts_for(r.probe.as_str())
        .iter()
        .filter_map(|f| {
            let v = r.facts.get(f.key)?;
            (!v.is_null()).then(|| {
                [
                    f.label.to_string(),
                    labels::fact_value(v, f.unit),
                    f.meaning.to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    table_start(h, &["", "value", "what it means"]);
    for row in rows {
        markup::text_row(h, &row);
    }
    h.push_str("</table>");
}

/// Every fact and parameter as recorded in run.json, folded: nested objects
/// flattened to one row per leaf, lists of records as their own small table.
fn raw_details(r: &ProbeResult, node: &str, h: &mut String) {
    if r.facts.is_empty() && r.params.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<details><summary>Raw facts and parameters of {} on {} as in run.json \
         (started {}, took {} ms)</summary>",
        escape(r.probe.as_str()),
        escape(node),
        escape(&r.started_at),
        r.duration_ms
    );
    let mut leaves = Vec::new();
    let mut lists = Vec::new();
    for (k, v) in &r.facts {
        flatten(k, v, &mut leaves, &mut lists);
    }
    if !leaves.is_empty() {
        table_start(h, &["fact", "value"]);
        for (k, v) in &leaves {
            markup::text_row(h, &[k, v]);
        }
        h.push_str("</table>");
    }
    for (k, records) in lists {
        let _ = write!(h, "<p>{}</p>", escape(&k));
        record_table(&records, h);
    }
    if !r.params.is_empty() {
        table_start(h, &["parameter", "value"]);
        for (k, v) in &r.params {
            markup::text_row(h, &[k.clone(), format::fact(v)]);
        }
        h.push_str("</table>");
    }
    h.push_str("</details>");
}

/// One row of a breakdown table: its key (for a per-CPU or per-path map)
/// and its fields.
type Record<'a> = (Option<&'a str>, &'a serde_json::Map<String, Value>);

/// A map whose every value is a flat object (per CPU, per path, per mode):
/// a table with a row per key rather than a dotted row per field.
fn keyed_records(map: &serde_json::Map<String, Value>) -> Option<Vec<Record<'_>>> {
    map.iter()
        .map(|(k, v)| Some((Some(k.as_str()), flat_object(v)?)))
        .collect()
}

/// `v` when it is a non-empty object of plain values.
fn flat_object(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.as_object()
        .filter(|o| !o.is_empty() && o.values().all(|x| !x.is_object() && !x.is_array()))
}

/// Leaf facts as (dotted key, text); lists of objects and keyed breakdowns
/// set aside whole, each to become a small table.
fn flatten<'a>(
    key: &str,
    v: &'a Value,
    leaves: &mut Vec<(String, String)>,
    lists: &mut Vec<(String, Vec<Record<'a>>)>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => match keyed_records(map) {
            Some(records) => lists.push((key.to_string(), records)),
            None => {
                for (k, child) in map {
                    flatten(&format!("{key}.{k}"), child, leaves, lists);
                }
            }
        },
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let records = items
                .iter()
                .filter_map(|i| Some((None, i.as_object()?)))
                .collect();
            lists.push((key.to_string(), records));
        }
        other => leaves.push((key.to_string(), format::fact(other))),
    }
}

/// Records (disks, NICs, per-CPU or per-path figures) as one table, one row
/// per record, its key first when it has one.
fn record_table(records: &[Record<'_>], h: &mut String) {
    let keyed = records.iter().any(|(k, _)| k.is_some());
    let mut cols: Vec<&str> = Vec::new();
    for (_, map) in records {
        for k in map.keys() {
            if !cols.contains(&k.as_str()) {
                cols.push(k);
            }
        }
    }
    let mut header = if keyed { vec![""] } else { Vec::new() };
    header.extend(&cols);
    table_start(h, &header);
    for (key, map) in records {
        let mut cells: Vec<String> = key.iter().map(|k| k.to_string()).collect();
        cells.extend(
            cols.iter()
                .map(|c| format::fact(map.get(*c).unwrap_or(&Value::Null))),
        );
        markup::text_row(h, &cells);
    }
    h.push_str("</table>");
}

fn warnings(r: &ProbeResult, h: &mut String) {
    for w in &r.warnings {
        let _ = write!(
            h,
            "<div class=\"warning\">{}</div>",
            escape(&labels::prose(w))
        );
    }
}

/// What each machine is: the key inventory facts side by side (one column
/// per node), each node's labels, warnings and raw inventory folded.
fn machines(run: &RunRecord, h: &mut String) {
    h.push_str("<h2 id=\"machines\">Machines</h2>");
    let inventories: Vec<(&NodeRecord, &ProbeResult)> = run
        .nodes
        .iter()
        .filter_map(|n| Some((n, n.inventory.as_ref()?)))
        .collect();
    if inventories.is_empty() {
        h.push_str("<p>No inventory.</p>");
        return;
    }
    let mut header = vec![String::new()];
    header.extend(inventories.iter().map(|(n, _)| n.name.clone()));
    header.push("what it means".into());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table_start(h, &header);
    let has_labels = run.nodes.iter().any(|n| !n.labels.is_empty());
    if has_labels {
        let mut row = vec!["labels".to_string()];
        for (n, _) in &inventories {
            let l: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(l.join(", "));
        }
        row.push("given in the plan".into());
        markup::text_row(h, &row);
    }
    for f in labels::facts_for(infraqual_probes::inventory::NAME.as_str()) {
        let values: Vec<Option<&Value>> = inventories
            .iter()
            .map(|(_, inv)| inv.facts.get(f.key).filter(|v| !v.is_null()))
            .collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let mut row = vec![f.label.to_string()];
        row.extend(values.iter().map(|v| {
            v.map(|v| labels::fact_value(v, f.unit))
                .unwrap_or_else(|| "-".into())
        }));
        row.push(f.meaning.to_string());
        markup::text_row(h, &row);
    }
    h.push_str("</table>");
    for (node, inv) in &inventories {
        warnings(inv, h);
        let _ = write!(h, "<div id=\"node-{}\">", escape(&node.name));
        raw_details(inv, &node.name, h);
        h.push_str("</div>");
    }
    for node in run.nodes.iter().filter(|n| n.inventory.is_none()) {
        let _ = write!(h, "<p>{}: no inventory.</p>", escape(&node.name));
    }
}

#[cfg(test)]
mod tests {
    use infraqual_probes::ProbeResult;
    use serde_json::json;

    use super::*;

    #[test]
    fn breakdowns_become_small_tables_and_nothing_nests() {
        let mut r = ProbeResult::new(infraqual_probes::steal::NAME, "n");
        r.facts.insert("steal_pct".into(), json!(0.5));
        r.facts.insert(
            "per_cpu".into(),
            json!({"0": {"hiccups": 3, "lost_pct": 0.2}, "1": {"hiccups": 5, "lost_pct": 0.4}}),
        );
        r.facts
            .insert("disks".into(), json!([{"name": "vda", "rotational": true}]));
        let mut h = String::new();
        raw_details(&r, "n", &mut h);
        assert!(h.starts_with("<details>") && h.ends_with("</details>"));
        assert!(
            h.contains("<p>per_cpu</p><table><tr><th></th><th>hiccups</th><th>lost_pct</th></tr>\
                 <tr><td>0</td><td>3</td><td>0.2</td></tr><tr><td>1</td><td>5</td><td>0.4</td></tr></table>"),
            "{h}"
        );
        assert!(h.contains("<tr><td>vda</td><td>yes</td></tr>"), "{h}");
        assert!(!h.contains("<td><table>"), "no table inside a table: {h}");
    }
}
