//! The short version of scripts/bench-fsync-vs-etcd (no root needed): a real
//! etcd on loopback with its data directory on disk, a few seconds of
//! `etcdctl check perf` in two slices, each followed by the fsync probe in
//! fio-etcd mode and in etcd-wal mode without and with etcd's backend. Checks that the bench
//! prints both ratios for each and etcd's backend commits, and leaves no process or
//! directory behind, also after a run that was killed or interrupted. How
//! close the ratios are to 1 is a figure the bench prints, not asserted
//! here: the machine is shared and noisy.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, processes_mentioning};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-fsync-vs-etcd")
}

/// A fresh directory on disk (the fsync probe refuses tmpfs), unique to the test.
fn disk_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("iq-bench-etcd-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn short_bench(dir: &Path) -> Command {
    let mut cmd = Command::new(script());
    cmd.args(["--dir", dir.to_str().unwrap()])
        .args(["--rounds", "1", "--slices", "2", "--load-seconds", "3"])
        .args(["--probe-seconds", "2", "--size", "1MiB"])
        .env("INFRAQUAL_BIN", env!("CARGO_BIN_EXE_infraqual"));
    cmd
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What a bench killed with SIGKILL leaves: its work directory (named after
/// a pid that no longer runs) and a live etcd on a data directory inside it.
fn leftover_of_a_killed_run(dir: &Path) -> (PathBuf, Child) {
    let old = dir.join("iq-bench-etcd-999999999");
    std::fs::create_dir(&old).unwrap();
    let (client, peer) = (free_port(), free_port());
    let etcd = Command::new("etcd")
        .args(["--name", "left", "--data-dir"])
        .arg(old.join("etcd"))
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("left=http://127.0.0.1:{peer}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd runs (scripts/setup-system installs etcd-server)");
    std::fs::write(old.join("etcd.pid"), format!("{}\n", etcd.id())).unwrap();
    (old, etcd)
}

#[test]
fn short_bench_prints_both_ratios_and_sweeps_a_killed_runs_leftovers() {
    let dir = disk_dir("short");
    let (old, mut left_etcd) = leftover_of_a_killed_run(dir.path());

    let out = short_bench(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");

    // etcd's own figures, said as such, and each mode's ratio of mean and p99.
    assert!(stdout.contains("etcd mean: sum/count"), "{stdout}");
    assert!(stdout.contains("p99: from its buckets"), "{stdout}");
    assert!(stdout.contains("WAL fsyncs"), "{stdout}");
    assert!(stdout.contains("in bucket "), "{stdout}");
    // etcd's backend commits, and the probe's beside them.
    assert!(stdout.contains(" backend commits, "), "{stdout}");
    assert!(stdout.contains("ratio to etcd's commit mean"), "{stdout}");
    for mode in ["fio-etcd", "etcd-wal-nobackend", "etcd-wal"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("median ratio probe/etcd {mode}: mean ")))
            .unwrap_or_else(|| panic!("no median ratio line for {mode}:\n{stdout}"));
        assert!(line.contains(" p99 "), "{line}");
        assert!(line.contains(" p99 as etcd "), "{line}");
        let mean: f64 = line
            .split("mean ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a number after mean: {line}"));
        assert!(mean > 0.0 && mean.is_finite(), "{line}");
    }

    // The killed run's etcd is stopped and its directory gone; this run left nothing.
    assert!(
        stderr.contains(&format!("removed {}", old.display())),
        "{stderr}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while left_etcd.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the leftover etcd still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "left behind");
    assert_eq!(
        processes_mentioning(dir.path().to_str().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn interrupted_bench_stops_etcd_and_removes_its_directory() {
    let dir = disk_dir("interrupted");
    let mut cmd = short_bench(dir.path());
    // Its own process group, interrupted as a terminal's Ctrl-C does: the
    // whole group gets SIGINT (bash alone would wait out a child that
    // survives it and carry on).
    let mut bench = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt once the load runs (etcd started, check perf writing its
    // output): the step a $(...) subshell once carried through a Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    let work = loop {
        let found = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("check-perf-1-1.txt").is_file());
        if let Some(work) = found {
            break work;
        }
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = std::fs::read_to_string(work.join("etcd.pid")).unwrap();
    let rc = unsafe { libc::kill(-(bench.id() as i32), libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = bench.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted bench does not report success"
    );
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "etcd {} still runs",
        pid.trim()
    );
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "left behind");
}
