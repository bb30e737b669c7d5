//! `infraqual report RUN_DIR`: re-render a bundle from its run.json alone.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infraqual_reports::{bundle, render};

use crate::exit::Outcome;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run bundle directory (runs/<run_id>).
    pub run_dir: PathBuf,
}

pub fn run(args: &ReportArgs) -> Result<Outcome> {
    let record = bundle::load(&args.run_dir)
        .with_context(|| format!("cannot read run bundle {}", args.run_dir.display()))?;
    let written = render::render_bundle(&args.run_dir, &record)
        .with_context(|| format!("rendering {}", args.run_dir.display()))?;
    println!(
        "report: {} ({} CSV files, {} plots)",
        args.run_dir.join("report.html").display(),
        written.csv_files,
        written.plot_files
    );
    Ok(Outcome::from_verdict(record.verdict))
}
