//! What the services probe accepts, and the limits it enforces.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::layout::{MAX_ENDPOINTS, MAX_SERVICES};
use super::modes::Mode;
use crate::error::ProbeError;
use crate::units::HumanDuration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Proxy modes to measure; unusable ones are reported in facts.skipped.
    pub modes: Vec<Mode>,
    /// Service counts to program, each measured from an empty layout.
    pub counts: Vec<usize>,
    /// Endpoints per service (all services share the same endpoints).
    pub endpoints: usize,
    /// Timed connects per position (front, middle, end) and count.
    pub samples: u32,
    /// Untimed connects per position before sampling (ARP, caches).
    pub warmup: u32,
    /// Cap on the sampling time of one count; sampling stops early (with a
    /// warning) rather than run past it.
    pub sample_time_limit: HumanDuration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            modes: Mode::ALL.to_vec(),
            counts: vec![10, 100, 1000, 5000, 10_000],
            endpoints: 1,
            samples: 300,
            warmup: 20,
            sample_time_limit: HumanDuration(Duration::from_secs(20)),
        }
    }
}

pub const MAX_SAMPLES: u32 = 100_000;

impl Params {
    /// Checks limits; returns the counts sorted and deduplicated and the
    /// modes deduplicated in their given order.
    pub fn validated(&self) -> Result<Params, ProbeError> {
        let mut p = self.clone();
        if p.modes.is_empty() {
            return Err(ProbeError::invalid("modes", "at least one mode is needed"));
        }
        let mut seen = Vec::new();
        p.modes.retain(|m| {
            let new = !seen.contains(m);
            seen.push(*m);
            new
        });
        if p.counts.is_empty() {
            return Err(ProbeError::invalid(
                "counts",
                "at least one service count is needed",
            ));
        }
        if let Some(bad) = p.counts.iter().find(|c| **c == 0 || **c > MAX_SERVICES) {
            return Err(ProbeError::invalid(
                "counts",
                format!(
                    "{bad} is outside 1..={MAX_SERVICES}: counts beyond {MAX_SERVICES} are refused \
                     (the largest published kube-proxy reference, KEP-3866, is 30,000 services, and \
                     the Service VIP range 198.18.128.0/17 must also hold the one added service)"
                ),
            ));
        }
        p.counts.sort_unstable();
        p.counts.dedup();
        if p.endpoints == 0 || p.endpoints > MAX_ENDPOINTS {
            return Err(ProbeError::invalid(
                "endpoints",
                format!(
                    "{} is outside 1..={MAX_ENDPOINTS} (endpoints are addresses in the private \
                     endpoint namespace)",
                    p.endpoints
                ),
            ));
        }
        if p.samples == 0 || p.samples > MAX_SAMPLES {
            return Err(ProbeError::invalid(
                "samples",
                format!("{} is outside 1..={MAX_SAMPLES}", p.samples),
            ));
        }
        if p.warmup > MAX_SAMPLES {
            return Err(ProbeError::invalid(
                "warmup",
                format!("{} is above {MAX_SAMPLES}", p.warmup),
            ));
        }
        if p.sample_time_limit.0.is_zero() || p.sample_time_limit.0 > Duration::from_secs(3600) {
            return Err(ProbeError::invalid(
                "sample_time_limit",
                "must be between 1s and 1h",
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_sweep() {
        let p = Params::default().validated().unwrap();
        assert_eq!(p.counts, [10, 100, 1000, 5000, 10_000]);
        assert_eq!(p.modes, Mode::ALL);
        assert_eq!(p.endpoints, 1);
    }

    #[test]
    fn counts_up_to_30000_pass_and_beyond_are_refused_with_the_reason() {
        let ok = Params {
            counts: vec![30_000, 10, 10],
            ..Params::default()
        };
        assert_eq!(ok.validated().unwrap().counts, [10, 30_000]);
        let too_many = Params {
            counts: vec![30_001],
            ..Params::default()
        };
        let err = too_many.validated().unwrap_err().to_string();
        assert!(
            err.contains("counts") && err.contains("30001") && err.contains("30000"),
            "{err}"
        );
        let zero = Params {
            counts: vec![0],
            ..Params::default()
        };
        assert!(zero.validated().is_err());
    }

    #[test]
    fn endpoints_samples_and_modes_are_bounded() {
        for bad in [
            Params {
                endpoints: 0,
                ..Params::default()
            },
            Params {
                endpoints: MAX_ENDPOINTS + 1,
                ..Params::default()
            },
            Params {
                samples: 0,
                ..Params::default()
            },
            Params {
                modes: vec![],
                ..Params::default()
            },
            Params {
                counts: vec![],
                ..Params::default()
            },
        ] {
            assert!(matches!(
                bad.validated(),
                Err(ProbeError::InvalidParam { .. })
            ));
        }
        let dup = Params {
            modes: vec![Mode::Nftables, Mode::IptablesNft, Mode::Nftables],
            ..Params::default()
        };
        assert_eq!(
            dup.validated().unwrap().modes,
            [Mode::Nftables, Mode::IptablesNft]
        );
    }

    #[test]
    fn json_parameters_parse_with_kebab_case_modes() {
        let p: Params = serde_json::from_value(serde_json::json!({
            "modes": ["iptables-legacy", "nftables"], "counts": [10], "sample_time_limit": "5s"
        }))
        .unwrap();
        assert_eq!(p.modes, [Mode::IptablesLegacy, Mode::Nftables]);
        assert_eq!(p.sample_time_limit.0, Duration::from_secs(5));
        assert!(serde_json::from_value::<Params>(serde_json::json!({"modes": ["ebpf"]})).is_err());
        assert!(serde_json::from_value::<Params>(serde_json::json!({"bogus": 1})).is_err());
    }
}
