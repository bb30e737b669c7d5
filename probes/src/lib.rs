//! infraqual's probes and result model. Probes measure; they know nothing of
//! HTTP, plans or plots. Each probe module exposes `Params` (serde, with
//! defaults) and `run(&Params, &ProbeContext) -> Result<ProbeResult, ProbeError>`.
//!
//! Unsafe code is denied except in the files that allow it at their top
//! (system calls std and socket2 do not wrap), every block with its SAFETY
//! argument.

#![deny(unsafe_code)]

pub mod context;
pub mod error;
pub mod fsync;
pub mod histogram;
pub mod inventory;
pub mod mtu;
pub mod privilege;
pub mod profile;
pub mod registry;
pub mod result;
pub mod rtt;
pub mod services;
pub mod steal;
pub mod system;
mod tcp_connect;
pub mod units;

pub use context::{CancelToken, ProbeContext};
pub use error::{ProbeError, ResultError};
pub use histogram::LatencyHistogram;
pub use profile::Profile;
pub use registry::ProbeName;
pub use result::{MetricSummary, ProbeResult, Status, Verdict, SCHEMA_VERSION};
