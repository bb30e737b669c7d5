//! infraqual's reporting layer: the run bundle on disk, and everything
//! rendered from it (CSV, plots, HTML). Reads only run.json, so any old run
//! re-renders.

#![forbid(unsafe_code)]

pub mod atomic;
pub mod baseline;
pub mod bundle;
pub mod charts;
pub mod compare;
pub mod error;
pub mod etcd;
pub mod export;
pub mod format;
pub mod markup;
pub mod regions;
pub mod render;
#[cfg(test)]
mod test_runs;

pub use error::ReportError;
