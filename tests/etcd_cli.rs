//! `infraqual etcd` through the real binary on run bundles built from
//! synthetic histograms (constant delays, so the answers are known): the
//! prediction, the best placement, the timing flags, the verdict exit
//! codes, and bad input as exit 2 with one line naming what is missing.

mod common;

use std::path::Path;

use common::{assert_one_line_error, run};
use infraqual_probes::{LatencyHistogram, ProbeResult, Profile, SCHEMA_VERSION};
use infraqual_reports::bundle::{NodeRecord, RunRecord, RunVerdict};

const MS: u64 = 1_000_000;

fn constant(ns: u64) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for _ in 0..200 {
        h.record(ns);
    }
    h
}

/// A bundle of nodes with constant fdatasync and constant round trips (ms).
fn write_bundle(dir: &Path, sync_ms: &[(&str, u64)], rtt_ms: &[(&str, &str, u64)]) {
    let nodes = sync_ms
        .iter()
        .map(|(name, sync)| {
            let mut results = Vec::new();
            let mut f = ProbeResult::new(infraqual_probes::fsync::NAME, name);
            f.param("mode", "etcd-wal");
            f.metric("fdatasync", &constant(sync * MS), "ns").unwrap();
            results.push(f);
            let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, name);
            for (_, peer, ms) in rtt_ms.iter().filter(|(a, _, _)| a == name) {
                r.metric(
                    &format!("{name}->{peer}/native/tcp_rr"),
                    &constant(ms * MS),
                    "ns",
                )
                .unwrap();
            }
            if !r.metrics.is_empty() {
                results.push(r);
            }
            NodeRecord {
                name: name.to_string(),
                labels: Default::default(),
                inventory: None,
                results,
                errors: Vec::new(),
            }
        })
        .collect();
    let record = RunRecord {
        schema_version: SCHEMA_VERSION,
        run_id: "etcd-cli".into(),
        started_at: "2026-12-01T00:00:00Z".into(),
        finished_at: Some("2026-12-01T00:01:00Z".into()),
        tool_version: "test".into(),
        plan: serde_json::json!({"name": "etcd-cli"}),
        profile: Profile::default(),
        nodes,
        verdict: RunVerdict::Pass,
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&record).unwrap()).unwrap();
}

fn oslo_frankfurt(dir: &Path) {
    write_bundle(
        dir,
        &[("oslo-1", 1), ("oslo-2", 2), ("fra-1", 1)],
        &[
            ("oslo-1", "oslo-2", 1),
            ("oslo-1", "fra-1", 26),
            ("oslo-2", "fra-1", 26),
        ],
    );
}

#[test]
fn prints_placements_best_leader_flags_and_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    oslo_frankfurt(tmp.path());
    let r = run(&["etcd", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // oslo-1 leads: max(1, min(1 + 2, 26 + 1)) = 3 ms; oslo-2 leads:
    // max(2, 1 + 1) = 2 ms, the best.
    assert!(
        r.stdout
            .contains("best placement: fra-1,oslo-1,oslo-2 with leader oslo-2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("--heartbeat-interval=100"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--election-timeout=1000"), "{}", r.stdout);
    assert!(r.stdout.contains("etcd tuning guide"), "{}", r.stdout);
    assert!(r.stdout.contains("PASS  etcd.commit.p99"), "{}", r.stdout);

    let j = run(&["etcd", tmp.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["placements"][0]["leaders"][0]["leader"], "oslo-2");
}

#[test]
fn a_failing_verdict_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    write_bundle(
        tmp.path(),
        &[("a", 15), ("b", 15), ("c", 15)],
        &[("a", "b", 1), ("a", "c", 1), ("b", "c", 1)],
    );
    let r = run(&["etcd", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("FAIL  fsync.fdatasync.p99"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    oslo_frankfurt(&dir);
    let d = dir.to_str().unwrap();
    assert_one_line_error(
        &run(&["etcd", d, "--members", "oslo-1,oslo-2,paris-1"]),
        "member `paris-1` is not a node of this run",
    );
    assert_one_line_error(
        &run(&["etcd", d, "--members", "oslo-1,oslo-2"]),
        "at least 3 members",
    );

    let two = tmp.path().join("two");
    write_bundle(&two, &[("a", 1), ("b", 1)], &[("a", "b", 1)]);
    assert_one_line_error(&run(&["etcd", two.to_str().unwrap()]), "at least 3 members");

    let no_rtt = tmp.path().join("no-rtt");
    write_bundle(&no_rtt, &[("a", 1), ("b", 1), ("c", 1)], &[]);
    assert_one_line_error(&run(&["etcd", no_rtt.to_str().unwrap()]), "no rtt results");

    let missing = tmp.path().join("missing");
    assert_one_line_error(&run(&["etcd", missing.to_str().unwrap()]), "run.json");
}

#[test]
fn measured_request_time_is_added_and_named_with_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    oslo_frankfurt(&dir);
    let d = dir.to_str().unwrap();
    let times = tmp.path().join("request-time.txt");
    let lines: String = (0..500).map(|_| "1000000\n").collect();
    std::fs::write(
        &times,
        format!("# etcd cluster on loopback, tmpfs\n{lines}"),
    )
    .unwrap();
    let t = times.to_str().unwrap();

    let r = run(&["etcd", d, "--request-time", t]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("plus etcd's own request time, one draw per put: p50 1.00 ms"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("500 puts"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("etcd cluster on loopback, tmpfs, from {t}")),
        "the source is named as the file describes it: {}",
        r.stdout
    );
    let j = run(&["etcd", d, "--request-time", t, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    // oslo-2 commits at 2 ms (prints_placements_best_leader_flags_and_verdicts),
    // plus the constant 1 ms; its 2 ms syncs make the backend commits that
    // stall its p99 longer than oslo-1's.
    let leaders = v["placements"][0]["leaders"].as_array().unwrap();
    let oslo2 = leaders.iter().find(|l| l["leader"] == "oslo-2").unwrap();
    let p50 = oslo2["p50_ns"].as_f64().unwrap();
    assert!((p50 - 3e6).abs() <= 3e6 * 0.002, "{oslo2}");
    let p99 = oslo2["p99_ns"].as_f64().unwrap();
    assert!(p99 > 4e6, "{oslo2}");
    assert_eq!(v["request_time"]["puts"], 500);

    std::fs::write(&times, "1000000\nfast\n").unwrap();
    assert_one_line_error(
        &run(&["etcd", d, "--request-time", t]),
        "line 2: `fast` is not a put latency in nanoseconds",
    );
    std::fs::write(&times, "1000000\n").unwrap();
    assert_one_line_error(
        &run(&["etcd", d, "--request-time", t]),
        "1 put latencies; at least 100 are needed",
    );
    assert_one_line_error(
        &run(&["etcd", d, "--request-time", "/nonexistent/rt.txt"]),
        "--request-time",
    );
}
