//! The short version of scripts/bench-etcd-cluster (root: network
//! namespaces): a real 3-member etcd in a lab, infraqual's fsync and rtt on
//! the same lab, `infraqual etcd` for the same placement and leader, puts
//! timed through etcd's v3 HTTP/JSON gateway. Checks that the bench yields
//! a prediction and a measurement and that it leaves no process, namespace,
//! mount or data directory behind. How close the two are is a figure the
//! bench prints, not asserted here: the machine is shared and noisy.

mod common;

use common::processes_mentioning;

use std::path::{Path, PathBuf};
use std::process::Command;

use infraqual_probes::require_caps;

/// Fixed, so a crashed run's leftovers are swept by the next run's start.
const STATE_DIR: &str = "/run/infraqual/bench-etcd-test";
const DATA_DIR: &str = "/var/tmp/infraqual-bench-etcd-test";

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

fn lab_namespaces(log: &str) -> Vec<String> {
    let ids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("lab id: "))
        .collect();
    let all = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    all.into_iter()
        .filter(|ns| ids.iter().any(|id| ns.starts_with(&format!("iq-{id}-"))))
        .collect()
}

#[test]
fn one_region_etcd_cluster_is_predicted_and_measured_and_leaves_nothing() {
    require_caps!(NetAdmin, SysAdmin);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-etcd-cluster");
    let out = Command::new(&script)
        .args([
            "--puts",
            "200",
            "--fsync-size",
            "1MiB",
            "--rtt-count",
            "200",
        ])
        .args([
            "--state-dir",
            STATE_DIR,
            "--data-dir",
            DATA_DIR,
            "one-region",
        ])
        .env("INFRAQUAL_BIN", env!("CARGO_BIN_EXE_infraqual"))
        // The one-region case mounts no slow disk.
        .env("IQ_SLOWFS_BIN", "/nonexistent/iq-slowfs")
        .output()
        .expect("the bench script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let result = stdout
        .lines()
        .find(|l| l.starts_with("RESULT one-region "))
        .unwrap_or_else(|| panic!("no RESULT line: {stdout}{stderr}"));
    for name in [
        "measured_p50_ns",
        "measured_p99_ns",
        "predicted_p50_ns",
        "predicted_p99_ns",
    ] {
        assert!(field(result, name) > 0, "{result}");
    }
    assert!(field(result, "measured_p99_ns") >= field(result, "measured_p50_ns"));
    assert!(
        stdout.contains("etcd_disk_wal_fsync_duration_seconds"),
        "{stdout}"
    );
    // The model was given etcd's own request time, measured on tmpfs.
    assert!(
        stdout.contains("etcd request time (single member on tmpfs"),
        "{stdout}"
    );

    assert!(
        !PathBuf::from(STATE_DIR).exists(),
        "state directory removed"
    );
    assert!(
        !PathBuf::from(DATA_DIR).exists(),
        "data directories removed"
    );
    let request_time_dir = "/dev/shm/bench-etcd-test-request-time";
    assert!(
        !PathBuf::from(request_time_dir).exists(),
        "request-time data removed"
    );
    assert_eq!(processes_mentioning(DATA_DIR), Vec::<String>::new());
    assert_eq!(processes_mentioning(request_time_dir), Vec::<String>::new());
    assert_eq!(lab_namespaces(&stdout), Vec::<String>::new());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(DATA_DIR), "no mount left");
}
