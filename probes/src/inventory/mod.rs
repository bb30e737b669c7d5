//! The inventory probe: what this machine really is. Facts only, plus
//! warnings and one verdict (conntrack table size) where a fact is a problem.

mod network;
mod platform;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{Probe, ProbeName, QualifyOptions};
use crate::result::{ProbeResult, Verdict};
use crate::system::{block, kernel};

pub use platform::{detect_container, detect_hypervisor, Virtualization};

pub const NAME: ProbeName = ProbeName::declare("inventory");

/// The inventory probe's declaration.
pub struct Inventory;

impl Probe for Inventory {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str = "What this machine really is: CPU, memory, hypervisor, disks, NICs, conntrack, firewall stack.";
    const HEAVY: bool = false;
    type Params = Params;

    /// Reading /proc and /sys takes seconds; a hung sysfs read must not
    /// hold a job for long.
    fn deadline(_params: &Params) -> Duration {
        Duration::from_secs(120)
    }

    fn qualify_params(_opts: &QualifyOptions<'_>) -> Params {
        Params {}
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }
}

/// The inventory takes no parameters; the struct keeps the probe interface
/// uniform and rejects unknown keys from plans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

pub fn run(_params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);

    platform::collect(&mut result);
    let release = kernel::release().unwrap_or_default();
    result.fact("kernel", release.clone());
    result.fact("disks", disks_json());
    network::collect(&mut result, &release);

    judge_conntrack(&mut result, ctx);
    result.finish(started);
    Ok(result)
}

fn disks_json() -> Value {
    json!(block::list(std::path::Path::new("/sys/block")))
}

const CONNTRACK_CHECK: &str = "inventory.nf_conntrack_max";

fn judge_conntrack(result: &mut ProbeResult, ctx: &ProbeContext) {
    let verdict = match result.facts.get("nf_conntrack_max").and_then(Value::as_f64) {
        Some(max) => {
            let verdict = ctx.profile.judge(CONNTRACK_CHECK, max);
            if verdict.status > crate::result::Status::Pass
                && verdict.status != crate::result::Status::Skip
            {
                result.warn(format!(
                    "nf_conntrack_max is {max}: a busy Kubernetes node can exhaust it and drop \
                     new connections (kube-proxy sets max(131072, 32768 x cores))"
                ));
            }
            verdict
        }
        None => Verdict::skip(
            CONNTRACK_CHECK,
            "entries",
            "nf_conntrack is not loaded here (kube-proxy loads it on a node)",
        ),
    };
    result.verdicts.push(verdict);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::read_trimmed;

    fn inventory() -> ProbeResult {
        run(&Params::default(), &ProbeContext::local()).unwrap()
    }

    #[test]
    fn cpu_and_memory_match_proc() {
        let r = inventory();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let threads = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        assert_eq!(r.facts["cpu_threads"], threads as u64);
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string());
        if let Some(model) = model {
            assert_eq!(r.facts["cpu_model"], model);
        }
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert_eq!(r.facts["memory_bytes"], total_kib * 1024);
    }

    #[test]
    fn kernel_clocksource_and_conntrack_match_proc_and_sys() {
        let r = inventory();
        assert_eq!(
            r.facts["kernel"],
            read_trimmed("/proc/sys/kernel/osrelease").unwrap()
        );
        let cs = read_trimmed("/sys/devices/system/clocksource/clocksource0/current_clocksource");
        assert_eq!(r.facts["clocksource"], json!(cs));
        let ct = crate::system::read_u64("/proc/sys/net/netfilter/nf_conntrack_max");
        assert_eq!(r.facts["nf_conntrack_max"], json!(ct));
        let v = r
            .verdicts
            .iter()
            .find(|v| v.check == CONNTRACK_CHECK)
            .unwrap();
        assert_eq!(v.observed, ct.map(|c| c as f64));
    }

    #[test]
    fn nics_and_mtus_match_sys_class_net() {
        let r = inventory();
        let nics = r.facts["nics"].as_array().unwrap();
        let names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(nics.len(), names.len());
        for nic in nics {
            let name = nic["name"].as_str().unwrap();
            let mtu = crate::system::read_u64(format!("/sys/class/net/{name}/mtu"));
            assert_eq!(nic["mtu"], json!(mtu), "{name}");
        }
    }

    #[test]
    fn hypervisor_flag_matches_cpuinfo() {
        let r = inventory();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flag = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
        assert_eq!(r.facts["virtualization"]["hypervisor_flag"], flag);
    }

    #[test]
    fn firewall_tools_and_nftables_kernel_gate_are_reported() {
        let r = inventory();
        let has_iptables = crate::system::tools::which("iptables").is_some();
        assert_eq!(r.facts["iptables"]["present"], has_iptables);
        let release = read_trimmed("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(
            r.facts["kernel_supports_nftables_mode"],
            kernel::at_least(&release, 5, 13)
        );
        assert_eq!(
            r.facts["ipvs"]["available"],
            std::path::Path::new("/proc/net/ip_vs").exists()
        );
    }
}
