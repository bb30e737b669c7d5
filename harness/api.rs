//! The agent's JSON API under /v1/, shared by the agent and the coordinator.

use infraqual_probes::{ProbeName, ProbeResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Agent and coordinator must come from the same release: the result
/// contract and parameters are checked by both sides.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub version: String,
    pub node: String,
    pub probes: Vec<String>,
    /// UDP and TCP echo responder port for the network probes, if running.
    pub echo_port: Option<u16>,
    /// The network namespace probes run in, if not the agent's own.
    pub netns: Option<String>,
    /// Who the agent is, for `[discover]`: the pod's and the node's IP as
    /// the downward API gives them (equal for a hostNetwork pod) and free
    /// labels. Agents of older builds send none of these.
    #[serde(default)]
    pub pod_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    pub host_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub probe: ProbeName,
    #[serde(default)]
    pub params: Value,
    /// The job is cancelled when no poll arrives for this long.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Hard limit on the job's run time.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

/// `POST /v1/targets`: addresses the agent's rtt and mtu jobs may send to,
/// and the echo nonce its responder answers, for `ttl_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRegistration {
    pub addresses: Vec<std::net::IpAddr>,
    pub ttl_ms: u64,
    /// A run's echo nonce (32 hex digits) this agent's echo responder
    /// answers for `ttl_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_nonce: Option<String>,
}

pub fn default_lease_ms() -> u64 {
    15_000
}

pub fn default_deadline_ms() -> u64 {
    30 * 60 * 1000
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobCreated {
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub probe: ProbeName,
    pub state: JobState,
    pub elapsed_ms: u64,
    #[serde(default)]
    pub result: Option<ProbeResult>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// `POST /v1/soaks`: the agent runs paced light probes once per `every_ms`
/// for `for_ms` and keeps the interval log until the coordinator fetched it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakRequest {
    pub for_ms: u64,
    pub every_ms: u64,
    /// The soak is cancelled when no poll arrives for this long.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Directory for the fsync slices (under one of the agent's --allow-dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<std::path::PathBuf>,
    /// Echo responders of other agents the rtt slices measure against
    /// (addresses the agent allows, as for rtt jobs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<SoakPeer>,
    /// The run's echo nonce the peers' responders answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_nonce: Option<String>,
    /// Continues an interval log a previous soak of this agent began (a
    /// restarted coordinator's): no header, intervals stamped on that log's
    /// time axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<LogContinuation>,
}

/// Where a continued interval log stands: its StartTime (seconds since the
/// epoch, the agent's clock when it began) and its end (seconds since then),
/// before which no new interval may start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogContinuation {
    pub start_time: f64,
    pub not_before: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakPeer {
    pub node: String,
    pub path: String,
    pub address: std::net::IpAddr,
    pub port: u16,
}

/// `GET /v1/soaks/<id>?from=N`: the soak's state and its interval log from
/// byte N on (what the agent still holds; bytes before N are dropped as
/// received).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoakStatus {
    pub id: String,
    pub state: JobState,
    /// Intervals written so far.
    pub intervals: u64,
    /// Byte offset of `log` in the whole interval log.
    pub offset: u64,
    pub log: String,
    #[serde(default)]
    pub error: Option<String>,
}
