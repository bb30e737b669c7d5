//! Renders a bundle's CSV, plots and report.html from its RunRecord. Every
//! artifact is produced first (in memory, PNGs in a staging directory) and
//! only then put in place, so a failure writes nothing.

use std::collections::HashSet;
use std::io::Write as _;
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
fn remove_stale(dir: &Path, fresh: &HashSet<String>) {
    for sub in ["csv", "plots"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = [".csv", ".svg", ".png"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if ours && !fresh.contains(&format!("{sub}/{name}")) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// PNGs go here as they are drawn and into plots/ only once everything
/// rendered: a fleet's PNGs are a couple of hundred megabytes, too much to
/// hold until the end, and a failure must still leave the old files alone.
/// A crash leaves the directory behind; the next render removes it.
const PNG_STAGING: &str = ".render-staging";

pub fn render_bundle(dir: &Path, record: &RunRecord) -> Result<Rendered, ReportError> {
    let staging = dir.join(PNG_STAGING);
    let result = render_staged(dir, &staging, record);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn render_staged(dir: &Path, staging: &Path, record: &RunRecord) -> Result<Rendered, ReportError> {
    // Left by a render that crashed.
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(|e| ReportError::io(staging, e))?;
    let mut artifacts: Vec<Artifact> = CsvExporter.export(record)?;
    let csv_files = artifacts.len();

    let mut rendered = Vec::new();
    let mut pngs = Vec::new();
    for chart in charts_for(record) {
        let svg = draw::svg(&chart)?;
        let name = format!("{}.png", chart.id);
        write_synced(&staging.join(&name), &draw::png(&chart)?)?;
        pngs.push(name);
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
    let plots = dir.join("plots");
    for name in &pngs {
        let to = plots.join(name);
        std::fs::rename(staging.join(name), &to).map_err(|e| ReportError::io(&to, e))?;
    }
    // The renames are durable only once the directory entry is synced.
    if let Ok(d) = std::fs::File::open(&plots) {
        let _ = d.sync_all();
    }
    let fresh: HashSet<String> = artifacts
        .into_iter()
        .map(|a| a.relative_path)
        .chain(pngs.iter().map(|name| format!("plots/{name}")))
        .collect();
    remove_stale(dir, &fresh);
    Ok(Rendered {
        csv_files,
        plot_files,
    })
}

/// A whole file, synced, so that moving it into place later is as durable
/// as [`atomic::write`].
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let mut file = std::fs::File::create(path).map_err(|e| ReportError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ReportError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runs::{hist, node, run};
    use infraqual_probes::ProbeResult;

    fn rtt_run() -> RunRecord {
        let mut a = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        a.metric("a->b/native/udp", &hist(30_000.0, 200, 1), "ns")
            .unwrap();
        let mut b = ProbeResult::new(infraqual_probes::rtt::NAME, "b");
        b.metric("b->a/native/udp", &hist(31_000.0, 200, 2), "ns")
            .unwrap();
        run("r", vec![node("a", &[], vec![a]), node("b", &[], vec![b])])
    }

    #[test]
    fn pngs_land_in_plots_and_a_crashed_renders_staging_and_stale_plots_go() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(PNG_STAGING);
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("left-by-a-crash.png"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        std::fs::write(dir.path().join("plots/renamed-chart.png"), b"x").unwrap();

        let rendered = render_bundle(dir.path(), &rtt_run()).unwrap();

        assert!(!staging.exists());
        let plots: Vec<String> = std::fs::read_dir(dir.path().join("plots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(plots.len(), rendered.plot_files, "{plots:?}");
        assert!(plots.iter().any(|p| p == "rtt-cdf-a-b.png"), "{plots:?}");
        assert!(!plots.iter().any(|p| p == "renamed-chart.png"));
        let png = std::fs::read(dir.path().join("plots/rtt-cdf-a-b.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_failed_render_leaves_no_staging_directory() {
        let dir = tempfile::tempdir().unwrap();
        // plots/ as a file: every chart draws, nothing can be put in place.
        std::fs::write(dir.path().join("plots"), b"not a directory").unwrap();
        assert!(render_bundle(dir.path(), &rtt_run()).is_err());
        assert!(!dir.path().join(PNG_STAGING).exists());
    }
}
