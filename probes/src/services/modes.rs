//! The proxy modes: which are usable here, and for each how to program a
//! layout (one batch, as kube-proxy does), add one service, read the rules
//! back, and clear the layout — always inside the node namespace.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{iptables, layout, nftables};
use crate::error::ProbeError;
use crate::system::netns::Netns;
use crate::system::{kernel, tools};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    IptablesLegacy,
    IptablesNft,
    Nftables,
    Ipvs,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::IptablesLegacy,
        Mode::IptablesNft,
        Mode::Nftables,
        Mode::Ipvs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::IptablesLegacy => "iptables-legacy",
            Mode::IptablesNft => "iptables-nft",
            Mode::Nftables => "nftables",
            Mode::Ipvs => "ipvs",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tools a usable mode runs, with their version line for the facts.
#[derive(Clone, Debug)]
pub struct Backend {
    pub mode: Mode,
    restore: PathBuf,
    save: PathBuf,
    pub version: String,
}

#[cfg(test)]
impl Backend {
    /// A backend over given tools, for tests of how the sweep treats a
    /// tool that is installed but refuses to work.
    pub(super) fn with_tools(mode: Mode, restore: PathBuf, save: PathBuf) -> Self {
        Backend {
            mode,
            restore,
            save,
            version: String::new(),
        }
    }
}

/// kube-proxy's nftables mode needs nft >= 1.0.0 and kernel >= 5.13
/// (KEP-3866 / kube-proxy's supported.go).
const NFT_MIN_KERNEL: (u32, u32) = (5, 13);

/// The backend for `mode`, or why it is skipped on this machine.
pub fn backend(mode: Mode) -> Result<Backend, String> {
    let find = |name: &str| tools::which(name).ok_or_else(|| format!("`{name}` is not installed"));
    match mode {
        Mode::IptablesLegacy | Mode::IptablesNft => {
            let flavour = if mode == Mode::IptablesLegacy {
                "legacy"
            } else {
                "nft"
            };
            let restore = find(&format!("iptables-{flavour}-restore"))?;
            let save = find(&format!("iptables-{flavour}-save"))?;
            let version = find(&format!("iptables-{flavour}"))
                .ok()
                .and_then(|p| tools::version_line(&p, &["--version"]))
                .unwrap_or_default();
            Ok(Backend {
                mode,
                restore,
                save,
                version,
            })
        }
        Mode::Nftables => {
            let nft = find("nft")?;
            let version = tools::version_line(&nft, &["--version"]).unwrap_or_default();
            if !nft_version_at_least_1(&version) {
                return Err(format!(
                    "kube-proxy's nftables mode needs nft >= 1.0.0; this is `{version}`"
                ));
            }
            let release = kernel::release().unwrap_or_default();
            if !kernel::at_least(&release, NFT_MIN_KERNEL.0, NFT_MIN_KERNEL.1) {
                return Err(format!(
                    "kube-proxy's nftables mode needs kernel >= 5.13; this is {release}"
                ));
            }
            Ok(Backend {
                mode,
                restore: nft.clone(),
                save: nft,
                version,
            })
        }
        Mode::Ipvs => {
            if !std::path::Path::new("/proc/net/ip_vs").exists() {
                return Err(
                    "the kernel has no IP_VS (/proc/net/ip_vs is absent), so kube-proxy's \
                            ipvs mode cannot run here"
                        .into(),
                );
            }
            Err(
                "IP_VS is present, but this build has no IPVS layout: it was written on a kernel \
                 without IP_VS and is not shipped untested"
                    .into(),
            )
        }
    }
}

/// `nftables v1.0.6 (Lester Gooch #5)` -> true.
pub fn nft_version_at_least_1(line: &str) -> bool {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 1)
}

/// kube-proxy's iptables-restore flags: wait for the xtables lock, keep
/// other chains, restore counters.
const RESTORE_ARGS: [&str; 5] = ["-w", "5", "-W", "100000", "--noflush"];

impl Backend {
    /// Programs `services` services from empty; returns the tool's run time.
    pub fn program_full(
        &self,
        ns: &Netns,
        services: usize,
        endpoints: usize,
    ) -> Result<Duration, ProbeError> {
        let eps = layout::endpoints(endpoints);
        let text = match self.mode {
            Mode::Nftables => nftables::full_sync(services, &eps).text,
            _ => iptables::full_sync(services, &eps).text,
        };
        self.apply(ns, &text)
    }

    /// Adds service number `existing` to `existing` programmed ones, the way
    /// kube-proxy's partial sync would.
    pub fn program_add(
        &self,
        ns: &Netns,
        existing: usize,
        endpoints: usize,
    ) -> Result<Duration, ProbeError> {
        let eps = layout::endpoints(endpoints);
        let text = match self.mode {
            Mode::Nftables => nftables::add_service(existing, &eps).text,
            _ => iptables::add_service(existing, &eps).text,
        };
        self.apply(ns, &text)
    }

    fn apply(&self, ns: &Netns, text: &str) -> Result<Duration, ProbeError> {
        let run = match self.mode {
            Mode::Nftables => ns.run(&self.restore, &["-f", "-"], Some(text.as_bytes()))?,
            _ => ns.run(
                &self.restore,
                &[&RESTORE_ARGS[..], &["--counters"]].concat(),
                Some(text.as_bytes()),
            )?,
        };
        Ok(run.elapsed)
    }

    /// Rules read back from the kernel: the KUBE-* rules of the nat table
    /// (iptables) or every rule of `table ip kube-proxy` (nftables).
    pub fn read_back_rules(&self, ns: &Netns) -> Result<usize, ProbeError> {
        match self.mode {
            Mode::Nftables => {
                let listed = ns.run(
                    &self.save,
                    &["-j", "list", "table", "ip", nftables::TABLE],
                    None,
                )?;
                nftables::count_listed(&listed.stdout)
                    .map(|(rules, _)| rules)
                    .map_err(|message| ProbeError::Failed {
                        probe: super::NAME.into(),
                        message,
                    })
            }
            _ => {
                let saved = ns.run(&self.save, &["-t", "nat"], None)?;
                Ok(iptables::count_saved_kube_rules(&saved.stdout))
            }
        }
    }

    /// Packets counted by service `index`'s KUBE-SERVICES rule (iptables
    /// modes only): one per connection that walked the NAT rules.
    pub fn service_rule_packets(
        &self,
        ns: &Netns,
        index: usize,
    ) -> Result<Option<u64>, ProbeError> {
        if self.mode == Mode::Nftables {
            return Ok(None);
        }
        let saved = ns.run(&self.save, &["-c", "-t", "nat"], None)?;
        Ok(iptables::saved_service_rule_packets(&saved.stdout, index))
    }

    /// Removes the layout so the next count starts from empty.
    pub fn clear(&self, ns: &Netns) -> Result<(), ProbeError> {
        match self.mode {
            Mode::Nftables => {
                ns.run(
                    &self.restore,
                    &["delete", "table", "ip", nftables::TABLE],
                    None,
                )?;
            }
            _ => {
                // Without --noflush, restore flushes every chain of the
                // tables it names and deletes their user chains.
                ns.run(
                    &self.restore,
                    &["-w", "5"],
                    Some(b"*filter\nCOMMIT\n*nat\nCOMMIT\n"),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_are_the_cli_names() {
        for mode in Mode::ALL {
            let json = serde_json::to_value(mode).unwrap();
            assert_eq!(json, mode.as_str());
            let back: Mode = serde_json::from_value(json).unwrap();
            assert_eq!(back, mode);
        }
    }

    #[test]
    fn nft_versions() {
        assert!(nft_version_at_least_1("nftables v1.0.6 (Lester Gooch #5)"));
        assert!(!nft_version_at_least_1("nftables v0.9.8 (E.D.S.)"));
        assert!(!nft_version_at_least_1(""));
    }

    #[test]
    fn ipvs_is_skipped_with_a_reason_when_the_kernel_lacks_it() {
        if !std::path::Path::new("/proc/net/ip_vs").exists() {
            let reason = backend(Mode::Ipvs).unwrap_err();
            assert!(reason.contains("/proc/net/ip_vs"), "{reason}");
        }
    }
}
