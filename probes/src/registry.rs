//! The probes this build can run. A probe gets a variant here only once it
//! works end to end: names the CLI, plans and agents accept come from this list.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::result::ProbeResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeName {
    Inventory,
    Steal,
    Fsync,
    Rtt,
    Mtu,
    Services,
}

impl ProbeName {
    /// Every probe, in the order `qualify` and `run` execute them.
    pub const ALL: &'static [ProbeName] = &[
        ProbeName::Inventory,
        ProbeName::Steal,
        ProbeName::Fsync,
        ProbeName::Rtt,
        ProbeName::Mtu,
        ProbeName::Services,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeName::Inventory => "inventory",
            ProbeName::Steal => "steal",
            ProbeName::Fsync => "fsync",
            ProbeName::Rtt => "rtt",
            ProbeName::Mtu => "mtu",
            ProbeName::Services => "services",
        }
    }

    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs probe `name` with JSON parameters (from a CLI, a plan or an agent
/// request); unknown or ill-typed parameters are `InvalidParam`.
pub fn run(name: ProbeName, params: &Value, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    match name {
        ProbeName::Inventory => crate::inventory::run(&parse(name, params)?, ctx),
        ProbeName::Steal => crate::steal::run(&parse(name, params)?, ctx),
        ProbeName::Fsync => crate::fsync::run(&parse(name, params)?, ctx),
        ProbeName::Rtt => crate::rtt::run(&parse(name, params)?, ctx),
        ProbeName::Mtu => crate::mtu::run(&parse(name, params)?, ctx),
        ProbeName::Services => crate::services::run(&parse(name, params)?, ctx),
    }
}

/// Checks parameters without running anything, so an agent can answer 400
/// before it starts a job.
pub fn validate(name: ProbeName, params: &Value) -> Result<(), ProbeError> {
    match name {
        ProbeName::Inventory => parse::<crate::inventory::Params>(name, params).map(|_| ()),
        ProbeName::Steal => {
            parse::<crate::steal::Params>(name, params).and_then(|p| p.plan().map(|_| ()))
        }
        ProbeName::Fsync => parse::<crate::fsync::Params>(name, params).and_then(|p| p.validate()),
        ProbeName::Rtt => parse::<crate::rtt::Params>(name, params).and_then(|p| p.validate()),
        ProbeName::Mtu => parse::<crate::mtu::Params>(name, params).and_then(|p| p.validate()),
        ProbeName::Services => {
            parse::<crate::services::Params>(name, params).and_then(|p| p.validated().map(|_| ()))
        }
    }
}

impl ProbeName {
    /// Probes that load the machine (CPU or disk) and must not overlap with
    /// another heavy probe on the same machine.
    pub fn is_heavy(self) -> bool {
        matches!(self.as_str(), "steal" | "fsync" | "services")
    }

    /// Directories a probe will write into, read from its parameters, so an
    /// agent can confine them to its allowed directories.
    pub fn writes_to(self, params: &Value) -> Vec<std::path::PathBuf> {
        match self.as_str() {
            "fsync" => params
                .get("dir")
                .and_then(Value::as_str)
                .map(|d| vec![std::path::PathBuf::from(d)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

fn parse<P: DeserializeOwned>(name: ProbeName, params: &Value) -> Result<P, ProbeError> {
    let value = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params.clone()
    };
    serde_json::from_value(value)
        .map_err(|e| ProbeError::invalid(format!("{name} parameters"), e.to_string()))
}

impl fmt::Display for ProbeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProbeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| format!("unknown probe `{s}` (available: {})", Self::names()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_rejected_with_the_list() {
        for p in ProbeName::ALL {
            assert_eq!(p.as_str().parse::<ProbeName>(), Ok(*p));
        }
        let e = "bogus".parse::<ProbeName>().unwrap_err();
        assert!(e.contains("available: inventory"), "{e}");
    }

    #[test]
    fn dispatch_rejects_unknown_parameters() {
        let ctx = ProbeContext::local();
        let e = run(ProbeName::Inventory, &serde_json::json!({"bogus": 1}), &ctx).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
        assert!(run(ProbeName::Inventory, &Value::Null, &ctx).is_ok());
    }
}
