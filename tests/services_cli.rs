//! `infraqual probe services` through the real binary: the JSON contract
//! keys from a small real run, exit code 2 for bad flags, and exit code 2
//! naming CAP_NET_ADMIN when the process lacks it.

mod common;
mod contract;

use std::process::Command;

use common::{assert_one_line_error, infraqual, run};
use serde_json::Value;

#[test]
fn probe_services_json_carries_the_contract_keys() {
    infraqual_probes::require_caps!(NetAdmin, SysAdmin);
    let r = run(&[
        "probe",
        "services",
        "--modes",
        "iptables-nft,nftables,ipvs",
        "--counts",
        "10,50",
        "--samples",
        "20",
        "--json",
    ]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("one ProbeResult on stdout");
    contract::assert_probe_result(&v);
    assert_eq!(v["probe"], "services");
    let facts = &v["facts"];
    for mode in ["iptables-nft", "nftables"] {
        for count in [10, 50] {
            let key = format!("{mode}/{count}");
            for position in ["front", "middle", "end"] {
                assert_eq!(v["metrics"][format!("{key}/{position}")]["count"], 20);
            }
            assert!(facts["programming_ms"][&key].is_number(), "{key}");
            assert!(facts["update_ms"][&key].is_number(), "{key}");
            assert!(facts["rules"][&key].is_number(), "{key}");
        }
    }
    // kube-proxy's 5 + S x (2 + 3E) for the iptables layout.
    assert_eq!(facts["rules"]["iptables-nft/50"], 5 + 50 * 5);
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        assert!(facts["skipped"]["ipvs"].is_string());
    }
}

#[test]
fn probe_services_bad_flags_exit_2_with_one_line() {
    let r = run(&["probe", "services", "--counts", "10,30001"]);
    assert_one_line_error(&r, "30000");
    let r = run(&["probe", "services", "--endpoints", "0"]);
    assert_one_line_error(&r, "endpoints");
    let r = run(&["probe", "services", "--modes", "ebpf"]);
    assert_one_line_error(&r, "ebpf");
}

#[test]
fn probe_services_without_cap_net_admin_exits_2_naming_it() {
    infraqual_probes::require_caps!(NetAdmin, SysAdmin);
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("SKIPPED: setpriv (util-linux) is not installed");
        return;
    };
    // Drop CAP_NET_ADMIN from the bounding set: the exec'd binary runs as
    // root without it.
    let program = infraqual().get_program().to_owned();
    let out = Command::new(setpriv)
        .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(program)
        .args(["probe", "services", "--counts", "10"])
        .env_remove("INFRAQUAL_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
}
