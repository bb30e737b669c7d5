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
use std::time::{Duration, Instant};

use infraqual_probes::require_caps;

/// Each test run's directories are these prefixes plus its pid, so two
/// checkouts running the test at once do not collide; a killed run's are
/// found by the prefix and swept once its pid is gone.
const STATE_PREFIX: &str = "/run/infraqual/bench-etcd-test-";
const DATA_PREFIX: &str = "/var/tmp/infraqual-bench-etcd-test-";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-etcd-cluster")
}

/// Pids of earlier runs whose state directory is still there.
fn leftover_pids() -> Vec<u32> {
    let (dir, prefix) = STATE_PREFIX.rsplit_once('/').unwrap();
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix(prefix)?
                        .parse::<u32>()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The bench's own sweep (recorded processes, FUSE mounts, labs, data) on
/// every run whose test process has died.
fn sweep_dead_runs() {
    for pid in leftover_pids() {
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let status = Command::new(script())
            .args(["--sweep", "--state-dir", &format!("{STATE_PREFIX}{pid}")])
            .args(["--data-dir", &format!("{DATA_PREFIX}{pid}")])
            .env("INFRAQUAL_BIN", env!("CARGO_BIN_EXE_infraqual"))
            .env("IQ_SLOWFS_BIN", "/nonexistent/iq-slowfs")
            .status()
            .expect("the bench script sweeps");
        assert!(status.success(), "sweeping the run of pid {pid}");
    }
}

/// The Python interpreter that `python3` runs, past any wrapper.
fn python_executable() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

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
    sweep_dead_runs();
    let state_dir = format!("{STATE_PREFIX}{}", std::process::id());
    let data_dir = format!("{DATA_PREFIX}{}", std::process::id());
    let out = Command::new(script())
        .args(["--puts", "200", "--rtt-count", "200"])
        .args([
            "--state-dir",
            &state_dir,
            "--data-dir",
            &data_dir,
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
    // The model was given etcd's own request time, measured on tmpfs by
    // a cluster placed as the real one.
    assert!(
        stdout.contains("etcd request time (3 members placed as these, tmpfs"),
        "{stdout}"
    );
    // The fsync probe ran at each member's own sync rate and entry size,
    // in turns with the puts, the leader's as the bench's one client; the
    // same model fed etcd's own inputs stands beside it.
    let probe_line = |node: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("fsync probe on {node}:")))
            .unwrap_or_else(|| panic!("no fsync probe line for {node}: {stdout}"))
    };
    assert!(
        probe_line("node-1").contains("one client in turn (--sequential)"),
        "{stdout}"
    );
    assert!(
        probe_line("node-2").contains("open schedule")
            && probe_line("node-2").contains("(as its etcd member, in turns with the puts"),
        "{stdout}"
    );
    for name in ["etcd_fed_p50_ns", "etcd_fed_p99_ns"] {
        assert!(field(result, name) > 0, "{result}");
    }

    assert!(
        !PathBuf::from(&state_dir).exists(),
        "state directory removed"
    );
    assert!(
        !PathBuf::from(&data_dir).exists(),
        "data directories removed"
    );
    let request_time_dir = format!(
        "/dev/shm/bench-etcd-test-{}-request-time",
        std::process::id()
    );
    assert!(
        !PathBuf::from(&request_time_dir).exists(),
        "request-time data removed"
    );
    assert_eq!(processes_mentioning(&data_dir), Vec::<String>::new());
    assert_eq!(
        processes_mentioning(&request_time_dir),
        Vec::<String>::new()
    );
    assert_eq!(lab_namespaces(&stdout), Vec::<String>::new());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&data_dir), "no mount left");
}

#[test]
fn a_killed_runs_leftovers_are_swept_by_the_next_run() {
    require_caps!(SysAdmin);
    // A pid that is surely dead: a child that has been waited for.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let state_dir = PathBuf::from(format!("{STATE_PREFIX}{dead}"));
    let data_dir = PathBuf::from(format!("{DATA_PREFIX}{dead}"));
    let marker = data_dir.join("one-region/node-1");
    std::fs::create_dir_all(&marker).unwrap();
    // A process the killed run recorded, still running, its data directory
    // on its command line as etcd's is. The interpreter itself, not a
    // shim (pyenv's python3 is a script that execs it): mid-exec a command
    // line reads empty, and a killed run's etcd had long finished starting.
    let mut orphan = Command::new(python_executable())
        .args([
            "-c",
            "import time; time.sleep(300)",
            marker.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let started = Instant::now();
    let cmdline = format!("/proc/{}/cmdline", orphan.id());
    while !std::fs::read(&cmdline)
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker.to_str().unwrap()))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the orphan never showed its command line"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The state directory appears whole (the other test of this file may
    // sweep at the same moment).
    let (run_dir, _) = STATE_PREFIX.rsplit_once('/').unwrap();
    std::fs::create_dir_all(run_dir).unwrap();
    let staging = tempfile::Builder::new()
        .prefix("bench-etcd-staging-")
        .tempdir_in(run_dir)
        .unwrap();
    let staging = staging.path();
    std::fs::create_dir_all(staging.join("pids")).unwrap();
    std::fs::write(
        staging.join("pids/etcd-one-region-0.pid"),
        format!("{} {}\n", orphan.id(), marker.display()),
    )
    .unwrap();
    std::fs::rename(staging, &state_dir).unwrap();

    sweep_dead_runs();

    assert!(!state_dir.exists(), "state directory swept");
    assert!(!data_dir.exists(), "data directory swept");
    // The sweep waits out its own grace (5 s) before SIGKILL; a process
    // still running well past that was never signalled.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = orphan.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = orphan.kill();
            let _ = orphan.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| !s.success()),
        "the recorded process was stopped: {status:?}"
    );
}
