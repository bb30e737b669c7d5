//! Errors of the probes crate. Variants carry the path, command or parameter
//! they are about, so a message read alone says what to fix.

use std::path::PathBuf;

/// Problems with the result model itself (histogram encoding, merging).
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("cannot encode histogram: {0}")]
    Encode(String),
    #[error("cannot decode histogram: {0}")]
    Decode(String),
    #[error("cannot merge histograms: {0}")]
    Merge(String),
}

/// Why a probe could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam { name: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("probe {probe} needs {capability}: {hint}")]
    MissingCapability {
        probe: String,
        capability: String,
        hint: String,
    },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("probe {probe} was cancelled")]
    Cancelled { probe: String },
    #[error("probe {probe}: {message}")]
    Failed { probe: String, message: String },
    #[error(transparent)]
    Result(#[from] ResultError),
    #[error(transparent)]
    Netns(#[from] crate::system::netns::NetnsError),
}

impl ProbeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProbeError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ProbeError::InvalidParam {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
