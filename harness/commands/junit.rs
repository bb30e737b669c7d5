//! `--junit FILE` on qualify, run and compare: the checks as JUnit XML for
//! CI systems. The exit code stays the command's own.

use std::path::Path;

use anyhow::{Context, Result};
use infraqual_reports::atomic;
use infraqual_reports::bundle::RunRecord;
use infraqual_reports::export::junit::{self, TestSuite};

pub fn write(path: &Path, name: &str, suites: &[TestSuite]) -> Result<()> {
    atomic::write(path, junit::document(name, suites).as_bytes())
        .with_context(|| format!("--junit {}", path.display()))?;
    println!("junit: {}", path.display());
    Ok(())
}

pub fn write_run(path: Option<&Path>, record: &RunRecord) -> Result<()> {
    match path {
        Some(p) => write(
            p,
            &format!("infraqual {}", record.run_id),
            &junit::run_suites(record),
        ),
        None => Ok(()),
    }
}
