//! compare.md: the summary and the tables, for a pull request or a ticket.

use std::fmt::Write as _;

use super::{latency_rows, region_rows, scalar_rows, CompareExporter};
use super::{LATENCY_HEADER, REGION_HEADER, SCALAR_HEADER};
use crate::compare::Comparison;
use crate::error::ReportError;
use crate::export::Artifact;

pub struct MarkdownExporter;

impl CompareExporter for MarkdownExporter {
    fn export(&self, c: &Comparison) -> Result<Vec<Artifact>, ReportError> {
        Ok(vec![Artifact {
            relative_path: "compare.md".into(),
            bytes: page(c).into_bytes(),
        }])
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn table(md: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
}

fn page(c: &Comparison) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# infraqual compare: {} (A, run `{}`) vs {} (B, run `{}`)\n",
        c.label_a, c.run_a, c.label_b, c.run_b
    );
    md.push_str("## Summary\n\n");
    for line in &c.summary {
        let _ = writeln!(md, "- {line}");
    }
    md.push('\n');
    if !c.latencies.is_empty() {
        md.push_str("## Latencies (judged from bootstrap intervals of the histograms)\n\n");
        table(&mut md, &LATENCY_HEADER, &latency_rows(c));
    }
    if !c.scalars.is_empty() {
        md.push_str("## Facts without a distribution (reported, not judged)\n\n");
        table(&mut md, &SCALAR_HEADER, &scalar_rows(c));
    }
    if c.regions.is_some() {
        md.push_str("## Round trips between regions (median)\n\n");
        table(&mut md, &REGION_HEADER, &region_rows(c));
    }
    for (side, list) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        if !list.is_empty() {
            let _ = writeln!(md, "Only in {side}: {}\n", list.join(", "));
        }
    }
    md
}
