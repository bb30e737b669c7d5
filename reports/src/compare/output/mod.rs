//! Renders a finished [`Comparison`]: compare.json, compare.md and
//! compare.html (with overlaid CDF plots), and the rows of the terminal
//! table. Nothing here computes a statistic.

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;

use super::{change_text, percent, Comparison};
use crate::error::ReportError;
use crate::export::Artifact;
use crate::format;

/// A comparison turned into named byte buffers (the caller writes them).
pub trait CompareExporter {
    fn export(&self, comparison: &Comparison) -> Result<Vec<Artifact>, ReportError>;
}

/// Every artifact of a comparison: json, md, html and the CDF plots.
pub fn artifacts(c: &Comparison) -> Result<Vec<Artifact>, ReportError> {
    let mut out = json::JsonExporter.export(c)?;
    out.extend(markdown::MarkdownExporter.export(c)?);
    out.extend(html::HtmlExporter.export(c)?);
    Ok(out)
}

pub const LATENCY_HEADER: [&str; 11] = [
    "probe",
    "metric",
    "node",
    "A p50",
    "B p50",
    "median change [95% CI]",
    "A p99",
    "B p99",
    "p99 change [95% CI]",
    "rounds A/B",
    "verdict",
];

pub fn latency_rows(c: &Comparison) -> Vec<Vec<String>> {
    c.latencies
        .iter()
        .map(|l| {
            let v = |x: u64| format::value(x as f64, &l.unit);
            let ch = |x: &Option<super::bootstrap::Change>| {
                x.as_ref().map(change_text).unwrap_or_else(|| "-".into())
            };
            vec![
                l.probe.clone(),
                l.metric.clone(),
                l.subject.clone(),
                v(l.a.p50),
                v(l.b.p50),
                ch(&l.median),
                v(l.a.p99),
                v(l.b.p99),
                ch(&l.p99),
                l.run_to_run.cell(),
                l.verdict_cell(),
            ]
        })
        .collect()
}

pub const SCALAR_HEADER: [&str; 7] = ["probe", "fact", "node", "A", "B", "change", "verdict"];

pub fn scalar_rows(c: &Comparison) -> Vec<Vec<String>> {
    c.scalars
        .iter()
        .map(|s| {
            vec![
                s.probe.clone(),
                s.fact.clone(),
                s.subject.clone(),
                format::value(s.a, &s.unit),
                format::value(s.b, &s.unit),
                s.change.map(percent).unwrap_or_else(|| "-".into()),
                "no distribution: not judged".into(),
            ]
        })
        .collect()
}

pub const REGION_HEADER: [&str; 6] = ["from", "to", "path", "kind", "A p50", "B p50"];

pub fn region_rows(c: &Comparison) -> Vec<Vec<String>> {
    let Some(r) = &c.regions else {
        return Vec::new();
    };
    let v = |x: Option<u64>| x.map_or_else(|| "-".into(), |x| format::duration_ns(x as f64));
    r.joined()
        .into_iter()
        .map(|r| {
            vec![
                r.from,
                r.to,
                r.path,
                r.kind.to_string(),
                v(r.a_p50_ns),
                v(r.b_p50_ns),
            ]
        })
        .collect()
}
