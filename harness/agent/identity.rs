//! Who an agent is, beyond its node name: the addresses Kubernetes' downward
//! API hands a pod and free labels. `/v1/health` reports them so a
//! coordinator that found agents by DNS (`[discover]`) can tell which node
//! each address belongs to and which agent runs on the host's network.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// This agent's pod IP (Kubernetes: status.podIP).
    #[arg(long, value_name = "IP", env = "INFRAQUAL_POD_IP")]
    pub pod_ip: Option<IpAddr>,
    /// The node's IP (Kubernetes: status.hostIP); equal to --pod-ip for a
    /// hostNetwork agent.
    #[arg(long, value_name = "IP", env = "INFRAQUAL_HOST_IP")]
    pub host_ip: Option<IpAddr>,
    /// A label reported in /v1/health, KEY=VALUE (repeatable; the
    /// environment variable takes a comma-separated list).
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        env = "INFRAQUAL_LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
}

impl Identity {
    pub fn from_args(args: &IdentityArgs) -> Result<Identity> {
        let mut labels = BTreeMap::new();
        for label in &args.labels {
            let label = label.trim();
            if label.is_empty() {
                continue;
            }
            let Some((key, value)) = label.split_once('=') else {
                bail!("--label {label}: expected KEY=VALUE");
            };
            let key = key.trim();
            if key.is_empty() {
                bail!("--label {label}: the key is empty");
            }
            labels.insert(key.to_string(), value.trim().to_string());
        }
        Ok(Identity {
            pod_ip: args.pod_ip,
            host_ip: args.host_ip,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(labels: &[&str]) -> IdentityArgs {
        IdentityArgs {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            ..IdentityArgs::default()
        }
    }

    #[test]
    fn labels_are_key_value_pairs() {
        let id = Identity::from_args(&args(&["zone=a", " disk = nvme", ""])).unwrap();
        assert_eq!(id.labels["zone"], "a");
        assert_eq!(id.labels["disk"], "nvme");
        assert_eq!(id.labels.len(), 2);
    }

    #[test]
    fn a_label_without_value_or_key_is_refused() {
        let e = Identity::from_args(&args(&["zone"])).unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");
        assert!(Identity::from_args(&args(&["=a"])).is_err());
    }
}
