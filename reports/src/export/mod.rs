//! Export formats, one file each, behind one trait that turns a run into
//! named byte buffers; the caller decides where and how they are written.

mod answers;
pub mod csv;
mod fio_reference;
pub mod html;
pub mod junit;
pub(crate) mod labels;
mod overlay_tax;
mod rounds;
mod rtt_schedule;
mod rtt_tables;
mod summary;

use crate::bundle::RunRecord;
use crate::error::ReportError;

/// One output file, relative to the bundle directory.
pub struct Artifact {
    pub relative_path: String,
    pub bytes: Vec<u8>,
}

pub trait Exporter {
    fn export(&self, run: &RunRecord) -> Result<Vec<Artifact>, ReportError>;
}
