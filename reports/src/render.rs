//! Renders a bundle's CSV, plots and report.html from its RunRecord. Every
//! artifact is produced in memory first, so a failure writes nothing.

use std::path::Path;

use crate::atomic;
use crate::bundle::RunRecord;
use crate::charts::{charts_for, draw};
use crate::error::ReportError;
use crate::export::csv::CsvExporter;
use crate::export::html::{HtmlExporter, RenderedChart};
use crate::export::{Artifact, Exporter};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub csv_files: usize,
    pub plot_files: usize,
}

/// Files an older render left in csv/ and plots/ that this one did not
/// produce (a chart that was renamed or regrouped) would mislead: remove them.
fn remove_stale(dir: &Path, artifacts: &[Artifact]) {
    let fresh: std::collections::HashSet<&str> =
        artifacts.iter().map(|a| a.relative_path.as_str()).collect();
    for sub in ["csv", "plots"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = [".csv", ".svg", ".png"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if ours && !fresh.contains(format!("{sub}/{name}").as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

pub fn render_bundle(dir: &Path, record: &RunRecord) -> Result<Rendered, ReportError> {
    let mut artifacts: Vec<Artifact> = CsvExporter.export(record)?;
    let csv_files = artifacts.len();

    let mut rendered = Vec::new();
    for chart in charts_for(record) {
        let svg = draw::svg(&chart)?;
        artifacts.push(Artifact {
            relative_path: format!("plots/{}.png", chart.id),
            bytes: draw::png(&chart)?,
        });
        rendered.push(RenderedChart { chart, svg });
    }
    let plot_files = rendered.len() * 2;
    artifacts.extend(HtmlExporter { charts: &rendered }.export(record)?);
    // The page has its copy of each SVG now: move the strings into their
    // files rather than hold every SVG twice (a fleet draws a thousand).
    artifacts.extend(rendered.into_iter().map(|rc| Artifact {
        relative_path: format!("plots/{}.svg", rc.chart.id),
        bytes: rc.svg.into_bytes(),
    }));

    for sub in ["csv", "plots"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| ReportError::io(&d, e))?;
    }
    for a in &artifacts {
        atomic::write(&dir.join(&a.relative_path), &a.bytes)?;
    }
    remove_stale(dir, &artifacts);
    Ok(Rendered {
        csv_files,
        plot_files,
    })
}
