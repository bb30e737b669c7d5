//! compare.json: the whole comparison, for CI and scripts. Changes are
//! fractions (0.05 = +5 %); latencies in the metric's unit (ns).

use super::CompareExporter;
use crate::compare::Comparison;
use crate::error::ReportError;
use crate::export::Artifact;

pub struct JsonExporter;

impl CompareExporter for JsonExporter {
    fn export(&self, c: &Comparison) -> Result<Vec<Artifact>, ReportError> {
        let mut bytes = serde_json::to_vec_pretty(c).map_err(|e| ReportError::Encode {
            what: "compare.json".into(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        Ok(vec![Artifact {
            relative_path: "compare.json".into(),
            bytes,
        }])
    }
}
