//! Terminal tables: the verdict table `qualify` prints and the metric table
//! of `probe`.

use infraqual_probes::{ProbeResult, Verdict};
use infraqual_reports::format;

/// Left-aligned columns sized to their widest cell.
/// Control characters (escape sequences, carriage returns, newlines) in
/// text that came from an agent or a file would rewrite the terminal; each
/// is shown as `?` instead.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| printable(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub fn verdict_row(node: &str, v: &Verdict) -> Vec<String> {
    vec![
        node.to_string(),
        v.check.clone(),
        v.observed
            .map(|o| format::value(o, &v.unit))
            .unwrap_or_else(|| "-".into()),
        v.threshold
            .map(|t| format::value(t, &v.unit))
            .unwrap_or_else(|| "-".into()),
        v.status.to_string().to_uppercase(),
        v.note.clone(),
    ]
}

pub const VERDICT_HEADER: [&str; 6] = ["node", "check", "observed", "threshold", "status", "note"];

/// The fio recipe's figure an etcd-wal fsync result carries beside its
/// judged p99: a row of the verdict table with status REF, not a verdict.
pub fn reference_row(result: &ProbeResult) -> Option<Vec<String>> {
    use infraqual_probes::fsync::reference;
    if result.probe != infraqual_probes::fsync::NAME {
        return None;
    }
    let fact = result.facts.get(reference::FACT)?;
    let ns = |key: &str| fact.get(key).and_then(serde_json::Value::as_f64);
    let (p99, mean) = (ns("p99_ns")?, ns("mean_ns")?);
    Some(vec![
        result.node.clone(),
        "fsync.fio_recipe.p99".into(),
        format::value(p99, "ns"),
        "-".into(),
        "REF".into(),
        format!(
            "fio's etcd recipe (mean {}), the community reference, not judged: {}",
            format::value(mean, "ns"),
            reference::WHY
        ),
    ])
}

/// Human summary of one probe result: metrics, verdicts, warnings.
pub fn probe_summary(result: &ProbeResult) -> String {
    let mut out = String::new();
    if !result.metrics.is_empty() {
        let rows: Vec<Vec<String>> = result
            .metrics
            .iter()
            .map(|(name, m)| {
                let f = |v: u64| format::value(v as f64, &m.unit);
                vec![
                    name.clone(),
                    m.count.to_string(),
                    f(m.p50),
                    f(m.p90),
                    f(m.p99),
                    f(m.p999),
                    f(m.max),
                ]
            })
            .collect();
        out.push_str(&render(
            &["metric", "count", "p50", "p90", "p99", "p99.9", "max"],
            &rows,
        ));
        out.push('\n');
    }
    // Nested facts (per-CPU tables, disk lists) stay in --json and the report;
    // with metrics shown, only the one-line facts are worth the screen.
    let rows: Vec<Vec<String>> = result
        .facts
        .iter()
        .filter(|(_, v)| result.metrics.is_empty() || !(v.is_object() || v.is_array()))
        .map(|(k, v)| vec![k.clone(), format::fact(v)])
        .collect();
    if !rows.is_empty() {
        out.push_str(&render(&["fact", "value"], &rows));
        out.push('\n');
    }
    if !result.verdicts.is_empty() {
        let rows: Vec<Vec<String>> = result
            .verdicts
            .iter()
            .map(|v| verdict_row(&result.node, v))
            .chain(reference_row(result))
            .collect();
        out.push_str(&render(&VERDICT_HEADER, &rows));
    }
    for w in &result.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn control_characters_from_agents_never_reach_the_terminal() {
        let rows = vec![vec![
            "node\x1b[2J".to_string(),
            "line one\r\nline two\x07\tend".to_string(),
        ]];
        let out = render(&["node", "message"], &rows);
        assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains('\x07'));
        assert_eq!(out.lines().count(), 2, "one header and one row: {out:?}");
        assert!(out.contains("node?[2J"), "{out}");
        assert_eq!(printable("größe 10 µs"), "größe 10 µs");
    }
}
