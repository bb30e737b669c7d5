//! Where this agent's rtt and mtu jobs may send: addresses inside the
//! operator's `--allow-target` CIDRs, and addresses a coordinator
//! registered (the other agents of its plan) for a limited time. Anything
//! else is refused, so a token holder cannot use the agent as a port scanner
//! or a connect flooder.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest registration accepted; a coordinator re-registers per run.
pub const MAX_REGISTRATION: Duration = Duration::from_secs(24 * 3600);
/// Addresses remembered at once (a plan's agents times their paths).
pub const MAX_REGISTERED: usize = 4096;

/// An address block, `198.18.0.0/15` or `fd00::/8`; a bare address is /32
/// or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a CIDR block (e.g. 10.0.0.0/8, fd00::/8)")]
pub struct CidrError {
    text: String,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError {
            text: text.to_string(),
        };
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The operator's blocks and the coordinator's registrations.
#[derive(Debug, Default)]
pub struct TargetPolicy {
    allowed: Vec<Cidr>,
    registered: Mutex<HashMap<IpAddr, Instant>>,
}

impl TargetPolicy {
    pub fn new(allowed: Vec<Cidr>) -> Self {
        TargetPolicy {
            allowed,
            registered: Mutex::default(),
        }
    }

    /// Allows `addresses` until `ttl` from now (capped); expired entries are
    /// dropped first. Refuses rather than grow past MAX_REGISTERED.
    pub fn register(&self, addresses: &[IpAddr], ttl: Duration) -> Result<(), String> {
        let now = Instant::now();
        let until = now + ttl.min(MAX_REGISTRATION);
        let mut table = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, expires| *expires > now);
        let new = addresses.iter().filter(|a| !table.contains_key(a)).count();
        if table.len() + new > MAX_REGISTERED {
            return Err(format!(
                "at most {MAX_REGISTERED} registered target addresses"
            ));
        }
        for a in addresses {
            let entry = table.entry(*a).or_insert(until);
            *entry = (*entry).max(until);
        }
        Ok(())
    }

    pub fn allows(&self, addr: IpAddr) -> bool {
        if self.allowed.iter().any(|c| c.contains(addr)) {
            return true;
        }
        let table = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        table.get(&addr).is_some_and(|e| *e > Instant::now())
    }
}

/// The `address` of every entry of a job's `targets` parameter (rtt, mtu).
pub fn job_target_addresses(params: &serde_json::Value) -> Result<Vec<IpAddr>, String> {
    let Some(targets) = params.get("targets").and_then(|t| t.as_array()) else {
        return Ok(Vec::new());
    };
    targets
        .iter()
        .map(|t| {
            t.get("address")
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| "every target needs an IP `address`".to_string())
        })
        .collect()
}

/// Targets one pairwise job may name: an all-pairs plan of a 256-node fleet.
pub const MAX_TARGETS_PER_JOB: usize = 512;
/// Exchanges per target, path and kind one job may ask for: a hundred times
/// the default, so a stolen token cannot turn an agent into a long-running
/// connect flooder.
pub const MAX_EXCHANGES_PER_TARGET: u64 = 100_000;

/// The agent's own caps on what a pairwise job sends, beyond the probe's
/// validation (which allows what a person running the probe by hand may).
pub fn check_traffic_limits(params: &serde_json::Value) -> Result<(), String> {
    let targets = params
        .get("targets")
        .and_then(|t| t.as_array())
        .map_or(0, Vec::len);
    if targets > MAX_TARGETS_PER_JOB {
        return Err(format!(
            "{targets} targets: this agent runs at most {MAX_TARGETS_PER_JOB} per job"
        ));
    }
    let count = params.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
    if count > MAX_EXCHANGES_PER_TARGET {
        return Err(format!(
            "count {count}: this agent runs at most {MAX_EXCHANGES_PER_TARGET} exchanges per target, path and kind in one job"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_limits_cap_targets_and_exchanges() {
        let target = serde_json::json!({"node": "b", "address": "198.19.1.1", "port": 7071});
        let ok = serde_json::json!({"targets": [target], "count": 1000});
        assert!(check_traffic_limits(&ok).is_ok());
        let many = serde_json::json!({"targets": vec![target; MAX_TARGETS_PER_JOB + 1]});
        assert!(check_traffic_limits(&many).unwrap_err().contains("targets"));
        let long = serde_json::json!({"targets": [], "count": MAX_EXCHANGES_PER_TARGET + 1});
        assert!(check_traffic_limits(&long)
            .unwrap_err()
            .contains("exchanges per target"));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_contain_what_they_should() {
        let c: Cidr = "198.18.0.0/15".parse().unwrap();
        assert!(c.contains(ip("198.19.3.1")));
        assert!(!c.contains(ip("198.20.0.1")));
        assert!(!c.contains(ip("::1")));
        let c: Cidr = "10.1.2.3".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("10.1.2.4")));
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert!(c.contains(ip("fd12::1")) && !c.contains(ip("fe80::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn registrations_allow_until_they_expire() {
        let p = TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("192.0.2.1")));
        p.register(&[ip("192.0.2.1")], Duration::from_secs(60))
            .unwrap();
        assert!(p.allows(ip("192.0.2.1")));
        p.register(&[ip("192.0.2.2")], Duration::ZERO).unwrap();
        assert!(!p.allows(ip("192.0.2.2")), "expired at once");
    }

    #[test]
    fn target_addresses_are_read_from_job_params() {
        let v = serde_json::json!({"targets": [{"address": "10.0.0.1"}, {"address": "::1"}]});
        assert_eq!(
            job_target_addresses(&v).unwrap(),
            [ip("10.0.0.1"), ip("::1")]
        );
        assert!(job_target_addresses(&serde_json::json!({"targets": [{}]})).is_err());
        assert!(job_target_addresses(&serde_json::json!({}))
            .unwrap()
            .is_empty());
    }
}
