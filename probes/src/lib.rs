//! infraqual's probes and result model. Probes measure; they know nothing of
//! HTTP, plans or plots. Each probe module declares itself by implementing
//! [`Probe`] (name, parameters with their defaults, limits, what reports may
//! judge and draw) and is listed once below.
//!
//! Unsafe code is denied except in the files that allow it at their top
//! (system calls std and socket2 do not wrap), every block with its SAFETY
//! argument.

#![deny(unsafe_code)]

pub mod context;
pub mod error;
pub mod histogram;
pub mod privilege;
pub mod probe;
pub mod profile;
pub mod random;
#[macro_use]
pub mod registry;
pub mod result;
pub mod rounds;
pub mod system;
mod tcp_connect;
pub mod timestamp;
pub mod units;

// Every probe, in the order `qualify` and `run` execute them: its module
// and its `Probe` type. A probe gets a line here only once it works end to
// end; the names the CLI, plans, agents and run.json accept come from here.
probe_registry! {
    inventory::Inventory,
    steal::Steal,
    fsync::Fsync,
    rtt::Rtt,
    mtu::Mtu,
    services::Services,
}

pub use context::{CancelToken, ProbeContext};
pub use error::{ProbeError, ResultError};
pub use histogram::LatencyHistogram;
pub use probe::{Probe, ProbeDescriptor, ProbeName};
pub use profile::Profile;
pub use result::{MetricSummary, ProbeResult, Status, Verdict, SCHEMA_VERSION};
