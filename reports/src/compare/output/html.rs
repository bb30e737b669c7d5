//! compare.html: one self-contained page (inline CSS and SVG, no scripts,
//! no network): the summary, the tables, and an overlaid CDF of A and B for
//! every latency metric (also written as plots/*.svg and .png).

use std::fmt::Write as _;

use super::{latency_rows, region_rows, scalar_rows, CompareExporter};
use super::{LATENCY_HEADER, REGION_HEADER, SCALAR_HEADER};
use crate::charts::{cdf, draw, slug, Chart};
use crate::compare::verdict::ChangeVerdict;
use crate::compare::{Comparison, LatencyComparison};
use crate::error::ReportError;
use crate::export::Artifact;
use crate::markup::{self, escape, table_start};

pub struct HtmlExporter;

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
            let caption = format!(
                "{} — {} (plots/{}.svg)",
                escape(&title),
                latency_badge(l),
                escape(&id)
            );
            figure_with_plots(&mut figures, &mut artifacts, &id, &caption, &chart)?;
        }
        artifacts.push(Artifact {
            relative_path: "compare.html".into(),
            bytes: page(c, &figures).into_bytes(),
        });
        Ok(artifacts)
    }
}

/// Draws `chart` inline into `figures` with its caption, and as
/// plots/<id>.svg and .png beside the page.
pub(crate) fn figure_with_plots(
    figures: &mut String,
    artifacts: &mut Vec<Artifact>,
    id: &str,
    caption_html: &str,
    chart: &Chart,
) -> Result<(), ReportError> {
    let svg = draw::svg(chart)?;
    markup::figure(figures, id, &svg, caption_html);
    artifacts.push(Artifact {
        relative_path: format!("plots/{id}.png"),
        bytes: draw::png(chart)?,
    });
    artifacts.push(Artifact {
        relative_path: format!("plots/{id}.svg"),
        bytes: svg.into_bytes(),
    });
    Ok(())
}

pub(crate) fn badge(v: ChangeVerdict) -> String {
    let class = match v {
        ChangeVerdict::Regressed => "regressed",
        ChangeVerdict::Improved => "improved",
        ChangeVerdict::NoChange => "no_change",
        ChangeVerdict::NotJudged => "not_judged",
    };
    markup::badge(class, v.as_str())
}

/// A latency's verdict badge; a context metric's says it is context only.
fn latency_badge(l: &LatencyComparison) -> String {
    if l.in_verdict() {
        badge(l.verdict)
    } else {
        format!(
            "{} <span class=\"meta\">context only: {}</span>",
            badge(l.verdict),
            escape(l.context_why.as_deref().unwrap_or_default())
        )
    }
}

/// The last column of `rows` is a verdict and becomes its badge (HTML).
fn table(h: &mut String, header: &[&str], rows: &[Vec<String>], badges: &[String]) {
    table_start(h, header);
    for (i, row) in rows.iter().enumerate() {
        h.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            match badges.get(i) {
                Some(b) if j + 1 == row.len() => {
                    let _ = write!(h, "<td>{b}</td>");
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
    markup::document_start(
        &mut h,
        &format!("infraqual compare: {} vs {}", c.label_a, c.label_b),
    );
    let _ = write!(
        h,
        "<h1>infraqual compare: {a} vs {b} {overall}</h1>\
         <p class=\"meta\">A = {a} (run <code>{ra}</code>), B = {b} (run <code>{rb}</code>); \
         noise threshold {noise:.1} %, {conf:.0} % bootstrap intervals from {n} resamples, seed {seed}. \
         A change is judged only when its whole interval lies beyond the noise threshold. \
         With several rounds on both sides (<code>--rounds N</code>) an interval draws rounds \
         with replacement, then samples within them, so it includes the variation from run to \
         run, and is widened by Student's t for so few rounds; with one round it holds the \
         noise within one run only. Metrics marked context only (CPU-bound, not what the \
         probe qualifies) are shown but never decide the verdict.</p>",
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
        let badges: Vec<String> = c.latencies.iter().map(latency_badge).collect();
        table(&mut h, &LATENCY_HEADER, &latency_rows(c), &badges);
    }
    if !c.scalars.is_empty() {
        h.push_str("<h2 id=\"facts\">Facts without a distribution</h2>");
        let badges: Vec<String> = c.scalars.iter().map(|s| badge(s.verdict)).collect();
        table(&mut h, &SCALAR_HEADER, &scalar_rows(c), &badges);
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
    markup::document_end(&mut h);
    h
}
