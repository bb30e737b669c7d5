use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid run.json: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: run.json has schema_version {found}, this build reads {expected}")]
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    #[error("chart {chart}: {message}")]
    Chart { chart: String, message: String },
    /// Bad input named by what it is (`baseline name "a/b"`).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl ReportError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}
