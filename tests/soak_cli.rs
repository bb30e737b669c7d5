//! `infraqual soak` end to end: the real binary on this machine's CPU and a
//! temporary directory's disk, its interval log read back by the Python
//! `hdrhistogram` package, a kill -9 and restart, and bad schedules.

mod agents;
mod common;
mod contract;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_one_line_error, infraqual, only_bundle, run_in};
use infraqual::soak::hlog;

#[test]
fn bad_schedules_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--for", "1h", "--every", "1s"], "--every 1s: outside"),
        (vec!["--for", "1h", "--every", "2h"], "--every 2h: outside"),
        (
            vec!["--for", "30days", "--every", "5m"],
            "--for 30days: outside",
        ),
        (vec!["--for", "4s", "--every", "4s"], "--for 4s: outside"),
        (
            vec!["--for", "10m", "--every", "20m"],
            "--every 20m is longer than --for 10m",
        ),
        (
            vec!["--for", "7days", "--every", "10s"],
            "would log 60480 intervals, at most 20000",
        ),
        (vec!["--for", "soon"], "soon"),
        (vec!["--every", "5m"], "required arguments"),
    ] {
        let mut all = vec!["soak"];
        all.extend(args.iter());
        let r = run_in(&all, Some(dir.path()));
        assert_one_line_error(&r, needle);
    }
    assert!(!dir.path().join("soak.hlog").exists(), "nothing measured");
}

/// A Python with the `hdrhistogram` package: a venv under the target
/// directory, made once (needs Debian's python3-venv and PyPI).
fn python_with_hdrh() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hdrh-venv");
    let python = venv.join("bin/python");
    let has = |p: &Path| {
        Command::new(p)
            .args(["-c", "import hdrh.log"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(
        made.success(),
        "python3 -m venv: install Debian's python3-venv"
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "hdrhistogram"])
        .status()
        .expect("pip runs");
    assert!(pip.success(), "pip install hdrhistogram failed");
    assert!(has(&python), "hdrh still not importable");
    python
}

fn soak_args<'a>(disk: &'a Path, for_: &'a str, every: &'a str) -> Vec<String> {
    vec![
        "soak".into(),
        "--for".into(),
        for_.into(),
        "--every".into(),
        every.into(),
        "--dir".into(),
        disk.display().to_string(),
        "--log".into(),
        "soak.hlog".into(),
        "--out".into(),
        "runs".into(),
    ]
}

/// A test's directory and, inside it, the "disk under test" for fsync.
fn dir_with_disk() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    (dir, disk)
}

fn work_dirs(disk: &Path) -> Vec<String> {
    std::fs::read_dir(disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_interval_log_reads_back_identically_in_python() {
    let (dir, disk) = dir_with_disk();
    let args = soak_args(&disk, "8s", "4s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_in(&args, Some(dir.path()));
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    contract::assert_bundles_under(&dir.path().join("runs"));
    assert!(work_dirs(&disk).is_empty(), "the fsync slices clean up");

    let log_path = dir.path().join("soak.hlog");
    let ours = hlog::read(&log_path).unwrap();
    assert_eq!(ours.intervals.len(), 2);
    let python = python_with_hdrh();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/soak/read_hlog.py"))
        .arg(&log_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();

    let ours: Vec<(String, f64, &infraqual_probes::LatencyHistogram)> = ours
        .intervals
        .iter()
        .flat_map(|i| {
            i.series
                .iter()
                .map(move |(t, h)| (t.clone(), i.facts.start, h))
        })
        .collect();
    assert_eq!(
        theirs.len(),
        ours.len(),
        "one histogram per series per interval"
    );
    assert!(ours.iter().any(|(t, _, _)| t == "fsync/fdatasync"));
    assert!(ours.iter().any(|(t, _, _)| t == "steal/hiccup"));
    for ((tag, start, hist), py) in ours.iter().zip(&theirs) {
        assert_eq!(py["tag"], tag.as_str());
        let start_ms = (start * 1000.0).round() as i64;
        assert!(
            (py["start_ms"].as_i64().unwrap() - start_ms).abs() <= 1,
            "{tag} {py}"
        );
        assert_eq!(py["count"].as_u64().unwrap(), hist.len(), "{tag}");
        assert_eq!(py["max"].as_u64().unwrap(), hist.max(), "{tag}");
        assert_eq!(
            py["p50"].as_u64().unwrap(),
            hist.value_at_quantile(0.5),
            "{tag}"
        );
        assert_eq!(
            py["p99"].as_u64().unwrap(),
            hist.value_at_quantile(0.99),
            "{tag}"
        );
        let buckets: Vec<(u64, u64)> = hist
            .inner()
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        let py_buckets: Vec<(u64, u64)> = py["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b[0].as_u64().unwrap(), b[1].as_u64().unwrap()))
            .collect();
        assert_eq!(py_buckets, buckets, "{tag}: every bucket");
    }
}

fn facts_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("#[infraqual interval "))
        .count()
}

#[test]
fn a_soak_killed_with_kill_9_continues_its_log_when_started_again() {
    let (dir, disk) = dir_with_disk();
    let args = soak_args(&disk, "16s", "4s");
    let log = dir.path().join("soak.hlog");
    let mut first = infraqual()
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while facts_lines(&log) < 2 {
        assert!(Instant::now() < until, "two intervals never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Into the third interval's fsync slice, then SIGKILL.
    std::thread::sleep(Duration::from_millis(1500));
    first.kill().unwrap();
    first.wait().unwrap();
    let before = hlog::read(&log).unwrap();
    assert!(before.intervals.len() >= 2);

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_in(&args, Some(dir.path()));
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("continuing"), "{}", r.stderr);
    contract::assert_bundles_under(&dir.path().join("runs"));
    assert!(
        work_dirs(&disk).is_empty(),
        "the killed run's fsync files are removed"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("#[StartTime:").count(),
        1,
        "appended, not rewritten"
    );
    let after = hlog::read(&log).unwrap();
    assert_eq!(after.start_time, before.start_time);
    assert_eq!(
        after.intervals.len(),
        4,
        "16s in 4s intervals, across the restart"
    );
    for (a, b) in before.intervals.iter().zip(&after.intervals) {
        assert_eq!(a.facts, b.facts, "the first run's intervals are kept");
    }
    let starts: Vec<f64> = after.intervals.iter().map(|i| i.facts.start).collect();
    assert!(starts.windows(2).all(|w| w[1] >= w[0] + 3.9), "{starts:?}");

    let bundle = only_bundle(&dir.path().join("runs"));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let results = run["nodes"][0]["results"].as_array().unwrap();
    let fsync = results.iter().find(|r| r["probe"] == "fsync").unwrap();
    assert_eq!(fsync["facts"]["soak_intervals"], 4);
    assert_eq!(
        fsync["series"]["interval_p99_ns/fdatasync"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let checks: Vec<&str> = fsync["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["fsync.fdatasync.p99", "fsync.fdatasync.p99.worst_window"]
    );
}

#[test]
fn rtt_to_a_peer_is_logged_per_interval_and_judged_per_window() {
    let dir = tempfile::tempdir().unwrap();
    // An ungated responder, as `infraqual lab echo` serves: an agent's
    // answers only the nonces its coordinator registered.
    let peer = infraqual_probes::rtt::responder::EchoResponder::start(
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        infraqual_probes::CancelToken::new(),
    )
    .unwrap();
    let target = format!("peer-1=127.0.0.1:{}", peer.port());
    let r = run_in(
        &["soak", "--for", "8s", "--every", "4s", "--peer", &target],
        Some(dir.path()),
    );
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    contract::assert_bundles_under(&dir.path().join("runs"));
    let log = hlog::read(&dir.path().join("soak.hlog")).unwrap();
    for interval in &log.intervals {
        let tags: Vec<&str> = interval.series.iter().map(|(t, _)| t.as_str()).collect();
        assert!(tags.contains(&"rtt/local->peer-1/native/udp"), "{tags:?}");
        assert!(
            tags.contains(&"rtt/local->peer-1/native/tcp_rr"),
            "{tags:?}"
        );
    }
    assert!(
        r.stdout.contains("rtt.udp.p99.worst_window"),
        "{}",
        r.stdout
    );

    let bad = run_in(
        &["soak", "--for", "8s", "--every", "4s", "--peer", "peer-1"],
        Some(dir.path()),
    );
    assert_one_line_error(&bad, "NODE=ADDR:PORT");
}
