//! compare.html: one self-contained page (inline CSS and SVG, no scripts,
//! no network): the summary, the tables, and an overlaid CDF of A and B for
//! every latency metric (also written as plots/*.svg and .png).

use std::fmt::Write as _;

use super::{latency_rows, region_rows, scalar_rows, CompareExporter};
use super::{LATENCY_HEADER, REGION_HEADER, SCALAR_HEADER};
use crate::charts::{cdf, draw, slug};
use crate::compare::verdict::ChangeVerdict;
use crate::compare::Comparison;
use crate::error::ReportError;
use crate::export::html::escape;
use crate::export::Artifact;

pub struct HtmlExporter;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}\
h1{font-size:1.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}\
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.3rem;font-weight:bold;color:#fff;white-space:nowrap}\
.regressed{background:#c62828}.improved{background:#2e7d32}.no_change{background:#757575}.not_judged{background:#9e9e9e}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}.meta{color:#555}";

impl CompareExporter for HtmlExporter {
    fn export(&self, c: &Comparison) -> Result<Vec<Artifact>, ReportError> {
        let mut artifacts = Vec::new();
        let mut figures = String::new();
        for l in &c.latencies {
            let id = slug(&format!("cdf-{}-{}-{}", l.probe, l.subject, l.metric));
            let title = format!("{} {} ({}): CDF, A vs B", l.probe, l.metric, l.subject);
            let a_label = format!("A: {}", c.label_a);
            let b_label = format!("B: {}", c.label_b);
            let chart = cdf::chart(
                &id,
                &title,
                &l.probe,
                &[(&a_label, &l.hist_a), (&b_label, &l.hist_b)],
            );
            let svg = draw::svg(&chart)?;
            let _ = write!(
                figures,
                "<figure id=\"{id}\">{}<figcaption>{} — {} (plots/{id}.svg)</figcaption></figure>",
                strip_xml_prolog(&svg),
                escape(&title),
                badge(l.verdict)
            );
            artifacts.push(Artifact {
                relative_path: format!("plots/{id}.png"),
                bytes: draw::png(&chart)?,
            });
            artifacts.push(Artifact {
                relative_path: format!("plots/{id}.svg"),
                bytes: svg.into_bytes(),
            });
        }
        artifacts.push(Artifact {
            relative_path: "compare.html".into(),
            bytes: page(c, &figures).into_bytes(),
        });
        Ok(artifacts)
    }
}

fn strip_xml_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

fn badge(v: ChangeVerdict) -> String {
    let class = match v {
        ChangeVerdict::Regressed => "regressed",
        ChangeVerdict::Improved => "improved",
        ChangeVerdict::NoChange => "no_change",
        ChangeVerdict::NotJudged => "not_judged",
    };
    format!("<span class=\"badge {class}\">{}</span>", v.as_str())
}

/// The last column of `rows` is a verdict name and becomes a badge.
fn table(h: &mut String, header: &[&str], rows: &[Vec<String>], verdicts: &[ChangeVerdict]) {
    h.push_str("<table><tr>");
    for c in header {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr>");
    for (i, row) in rows.iter().enumerate() {
        h.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            match verdicts.get(i) {
                Some(v) if j + 1 == row.len() => {
                    let _ = write!(h, "<td>{}</td>", badge(*v));
                }
                _ => {
                    let _ = write!(h, "<td>{}</td>", escape(cell));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn page(c: &Comparison, figures: &str) -> String {
    let mut h = String::new();
    let overall = if c.regressed() {
        badge(ChangeVerdict::Regressed)
    } else if c.count(ChangeVerdict::Improved) > 0 {
        badge(ChangeVerdict::Improved)
    } else {
        badge(ChangeVerdict::NoChange)
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>infraqual compare: {a} vs {b}</title><style>{STYLE}</style></head><body>\
         <h1>infraqual compare: {a} vs {b} {overall}</h1>\
         <p class=\"meta\">A = {a} (run <code>{ra}</code>), B = {b} (run <code>{rb}</code>); \
         noise threshold {noise:.1} %, {conf:.0} % bootstrap intervals from {n} resamples, seed {seed}. \
         A change is judged only when its whole interval lies beyond the noise threshold.</p>",
        a = escape(&c.label_a),
        b = escape(&c.label_b),
        ra = escape(&c.run_a),
        rb = escape(&c.run_b),
        noise = c.noise * 100.0,
        conf = c.confidence * 100.0,
        n = c.resamples,
        seed = c.seed,
    );
    h.push_str("<h2 id=\"summary\">What changed</h2><ul>");
    for line in &c.summary {
        let _ = write!(h, "<li>{}</li>", escape(line));
    }
    h.push_str("</ul>");
    if !c.latencies.is_empty() {
        h.push_str("<h2 id=\"latencies\">Latencies</h2>");
        let verdicts: Vec<ChangeVerdict> = c.latencies.iter().map(|l| l.verdict).collect();
        table(&mut h, &LATENCY_HEADER, &latency_rows(c), &verdicts);
    }
    if !c.scalars.is_empty() {
        h.push_str("<h2 id=\"facts\">Facts without a distribution</h2>");
        let verdicts: Vec<ChangeVerdict> = c.scalars.iter().map(|s| s.verdict).collect();
        table(&mut h, &SCALAR_HEADER, &scalar_rows(c), &verdicts);
    }
    if let Some(r) = &c.regions {
        h.push_str("<h2 id=\"regions\">Round trips between regions (median)</h2>");
        table(&mut h, &REGION_HEADER, &region_rows(c), &[]);
        if !r.impact.is_empty() {
            h.push_str("<ul>");
            for line in &r.impact {
                let _ = write!(h, "<li>{}</li>", escape(line));
            }
            h.push_str("</ul>");
        }
    }
    for (side, list) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        if !list.is_empty() {
            let _ = write!(
                h,
                "<p class=\"meta\">Only in {side}: {}</p>",
                escape(&list.join(", "))
            );
        }
    }
    if !figures.is_empty() {
        h.push_str("<h2 id=\"cdfs\">Distributions</h2>");
        h.push_str(figures);
    }
    h.push_str("</body></html>\n");
    h
}
