//! NICs, conntrack and the packet-filtering stack kube-proxy will use.

use std::path::Path;

use serde_json::{json, Value};

use crate::result::ProbeResult;
use crate::system::{kernel, read_trimmed, read_u64, tools};

pub fn collect(result: &mut ProbeResult, kernel_release: &str) {
    result.fact("nics", nics(Path::new("/sys/class/net")));
    result.fact(
        "nf_conntrack_max",
        read_u64("/proc/sys/net/netfilter/nf_conntrack_max"),
    );

    let ipvs = Path::new("/proc/net/ip_vs").exists();
    result.fact(
        "ipvs",
        json!({
            "available": ipvs,
            "reason": if ipvs { None } else {
                Some("no /proc/net/ip_vs: the kernel has no IP_VS (or the module is not loaded)")
            },
            "ipvsadm": tools::which("ipvsadm").map(|p| p.display().to_string()),
        }),
    );

    let iptables = tools::which("iptables");
    let iptables_version = iptables
        .as_deref()
        .and_then(|p| tools::version_line(p, &["--version"]));
    result.fact(
        "iptables",
        json!({
            "present": iptables.is_some(),
            "path": iptables.as_ref().map(|p| p.display().to_string()),
            "version": iptables_version,
            "backend": iptables_version.as_deref().and_then(tools::iptables_backend),
            "restore": tools::which("iptables-restore").is_some(),
        }),
    );
    let nft = tools::which("nft");
    result.fact(
        "nftables",
        json!({
            "present": nft.is_some(),
            "path": nft.as_ref().map(|p| p.display().to_string()),
            "version": nft.as_deref().and_then(|p| tools::version_line(p, &["--version"])),
        }),
    );
    let nft_kernel_ok = kernel::at_least(kernel_release, 5, 13);
    result.fact("kernel_supports_nftables_mode", nft_kernel_ok);
    if !nft_kernel_ok {
        result.warn(format!(
            "kernel {kernel_release} is older than 5.13: kube-proxy's nftables mode needs 5.13 or newer"
        ));
    }
}

fn nics(dir: &Path) -> Value {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Value::Array(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Value::Array(
        names
            .into_iter()
            .map(|name| {
                let d = dir.join(&name);
                let virtual_dev = std::fs::canonicalize(&d)
                    .map(|p| p.to_string_lossy().contains("/virtual/"))
                    .unwrap_or(false);
                json!({
                    "name": name,
                    "mtu": read_u64(d.join("mtu")),
                    "operstate": read_trimmed(d.join("operstate")),
                    "address": read_trimmed(d.join("address")),
                    "speed_mbps": read_trimmed(d.join("speed")).and_then(|s| s.parse::<i64>().ok()).filter(|s| *s > 0),
                    "virtual": virtual_dev,
                })
            })
            .collect(),
    )
}
