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
pub mod export;
pub mod format;
pub mod render;

pub use error::ReportError;
