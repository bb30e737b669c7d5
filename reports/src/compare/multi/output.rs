//! A comparison of several runs as compare.json, compare.md and
//! compare.html (with one CDF per latency, every run a line), and as the
//! rows of the terminal table. Nothing here computes a statistic.

use std::fmt::Write as _;

use super::{Cell, MultiComparison, Row};
use crate::charts::{cdf, slug};
use crate::compare::output::html::{badge, figure_with_plots};
use crate::compare::{change_text, Comparison, MetricRole};
use crate::error::ReportError;
use crate::export::Artifact;
use crate::format;
use crate::markup::{self, escape, table_start};

pub fn artifacts(m: &MultiComparison) -> Result<Vec<Artifact>, ReportError> {
    let mut json = serde_json::to_vec_pretty(m).map_err(|e| ReportError::Encode {
        what: "compare.json".into(),
        message: e.to_string(),
    })?;
    json.push(b'\n');
    let mut out = vec![
        Artifact {
            relative_path: "compare.json".into(),
            bytes: json,
        },
        Artifact {
            relative_path: "compare.md".into(),
            bytes: markdown(m).into_bytes(),
        },
    ];
    let mut figures = String::new();
    for (id, title, chart) in cdf_charts(m) {
        let caption = escape(&format!("{title} (plots/{id}.svg)"));
        figure_with_plots(&mut figures, &mut out, &id, &caption, &chart)?;
    }
    out.push(Artifact {
        relative_path: "compare.html".into(),
        bytes: html(m, &figures).into_bytes(),
    });
    Ok(out)
}

/// One CDF per latency row: the baseline's histogram and every other run's.
fn cdf_charts(m: &MultiComparison) -> Vec<(String, String, crate::charts::Chart)> {
    let mut charts = Vec::new();
    for row in m.rows.iter().filter(|r| r.statistic == "p50") {
        let mut lines: Vec<(String, &infraqual_probes::LatencyHistogram)> = Vec::new();
        for (i, c) in m.pairwise.iter().enumerate() {
            let Some(l) = c.latencies.iter().find(|l| {
                l.probe == row.probe
                    && l.metric == row.metric
                    && subject_is(c, &l.subject, &row.node)
            }) else {
                continue;
            };
            if lines.is_empty() {
                lines.push((m.labels[0].clone(), &l.hist_a));
            }
            lines.push((m.labels[i + 1].clone(), &l.hist_b));
        }
        if lines.len() < 2 {
            continue;
        }
        let id = slug(&format!("cdf-{}-{}-{}", row.probe, row.node, row.metric));
        let title = format!(
            "{} {} on {}: CDF of every run",
            row.probe, row.metric, row.node
        );
        let refs: Vec<(&str, &infraqual_probes::LatencyHistogram)> =
            lines.iter().map(|(l, h)| (l.as_str(), *h)).collect();
        let chart = cdf::chart(&id, &title, &row.probe, &refs);
        charts.push((id, title, chart));
    }
    charts
}

/// Whether a pairwise subject is the baseline node `node`.
fn subject_is(c: &Comparison, subject: &str, node: &str) -> bool {
    subject == node || c.pairing_note.is_some() && subject.starts_with(&format!("{node} vs "))
}

fn value_text(row: &Row, cell: &Cell) -> String {
    match (cell.value, cell.p99) {
        (None, _) => "-".into(),
        (Some(p50), Some(p99)) => format!(
            "p50 {} (p99 {})",
            format::value(p50, &row.unit),
            format::value(p99, &row.unit)
        ),
        (Some(v), None) => format::value(v, &row.unit),
    }
}

/// `regressed: median +80 % [+70 %, +90 %], p99 +105 % [+98 %, +112 %],
/// 5 vs 5 rounds`
fn verdict_text(row: &Row, cell: &Cell, noise: f64) -> Option<String> {
    let v = cell.verdict?;
    let v = if row.role == Some(MetricRole::Context) {
        format!("{v}, context only")
    } else {
        v.to_string()
    };
    let mut parts = Vec::new();
    if let Some(c) = &cell.median_change {
        parts.push(format!("median {}", change_text(c)));
    }
    if let Some(c) = &cell.p99_change {
        parts.push(format!("p99 {}", change_text(c)));
    }
    if let Some(r) = cell.run_to_run {
        parts.push(r.decided_by(noise));
    }
    Some(if parts.is_empty() {
        v
    } else {
        format!("{v}: {}", parts.join(", "))
    })
}

/// The terminal and markdown table: one column per run.
pub fn header(m: &MultiComparison) -> Vec<String> {
    let mut h = vec!["probe".to_string(), "measured".into(), "node".into()];
    for (i, l) in m.labels.iter().enumerate() {
        h.push(if i == 0 {
            format!("{l} (baseline)")
        } else {
            l.clone()
        });
    }
    h
}

pub fn rows(m: &MultiComparison) -> Vec<Vec<String>> {
    m.rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.probe.clone(), row.metric.clone(), row.node.clone()];
            for cell in &row.cells {
                let mut text = value_text(row, cell);
                if cell.best {
                    text.push_str(" (best)");
                }
                if let Some(v) = verdict_text(row, cell, m.noise) {
                    text.push_str(&format!("; {v}"));
                }
                cells.push(text);
            }
            cells
        })
        .collect()
}

fn markdown(m: &MultiComparison) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# infraqual compare: {} (baseline: {})\n",
        m.labels.join(" vs "),
        m.labels[0]
    );
    md.push_str("## Overall\n\n");
    for o in &m.overall {
        let _ = writeln!(md, "- {}", o.sentence());
    }
    let _ = writeln!(
        md,
        "\nBest: the lowest median (or the better fact). Verdicts against the baseline: {:.0} % bootstrap intervals, noise threshold {:.1} %.\n",
        m.confidence * 100.0,
        m.noise * 100.0
    );
    md.push_str("## Side by side\n\n");
    let header = header(m);
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(header.len()));
    for row in rows(m) {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md
}

fn html(m: &MultiComparison, figures: &str) -> String {
    let mut h = String::new();
    let title = format!("infraqual compare: {}", m.labels.join(" vs "));
    markup::document_start(&mut h, &title);
    let _ = write!(
        h,
        "<h1>{}</h1><p class=\"meta\">baseline: {}; best: the lowest median (or the better \
         fact); verdicts against the baseline from {:.0} % bootstrap intervals of the recorded \
         histograms, noise threshold {:.1} %.</p>",
        escape(&title),
        escape(&m.labels[0]),
        m.confidence * 100.0,
        m.noise * 100.0
    );
    h.push_str("<section id=\"answers\"><h2>Overall</h2><ul>");
    for o in &m.overall {
        let _ = write!(h, "<li>{}</li>", escape(&o.sentence()));
    }
    h.push_str("</ul></section><h2 id=\"side-by-side\">Side by side</h2>");
    let head = header(m);
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    table_start(&mut h, &head);
    for row in &m.rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(&row.probe),
            escape(&crate::export::labels::metric(&row.metric)),
            escape(&row.node)
        );
        for cell in &row.cells {
            let class = if cell.best { " class=\"best\"" } else { "" };
            let _ = write!(h, "<td{class}>{}", escape(&value_text(row, cell)));
            if cell.best {
                h.push_str(" <strong>best</strong>");
            }
            if let Some(v) = cell.verdict {
                let detail = verdict_text(row, cell, m.noise).unwrap_or_default();
                let detail = detail.split_once(": ").map(|(_, d)| d).unwrap_or("");
                let context = if row.role == Some(MetricRole::Context) {
                    " context only;"
                } else {
                    ""
                };
                let _ = write!(h, "<br>{}{context} {}", badge(v), escape(detail));
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2 id=\"distributions\">Distributions</h2>");
    h.push_str(figures);
    markup::document_end(&mut h);
    h
}
