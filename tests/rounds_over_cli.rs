//! `--over DURATION` through the real binary: rounds spread across the
//! span (each round starts no earlier than its place in it), recorded in
//! the run's plan, a Ctrl-C during a wait keeps the rounds that completed,
//! and bad spans are one line naming the flag; `rounds_over` in a plan run
//! through a real agent the same way.

mod agents;
mod common;
mod contract;

use std::process::Stdio;
use std::time::{Duration, Instant};

use agents::{node, run_json, Agent};
use common::{assert_one_line_error, infraqual, probe_result, qualify_fsync_bundle, run, run_in};
use serde_json::Value;

/// Seconds since the epoch of an RFC 3339 UTC stamp of whole seconds
/// (`2026-12-02T03:44:25Z`), by the days-from-civil algorithm.
fn epoch_seconds(stamp: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| stamp[range].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

fn round_starts(result: &Value) -> Vec<i64> {
    result["rounds"]
        .as_array()
        .expect("rounds recorded")
        .iter()
        .map(|r| epoch_seconds(r["started_at"].as_str().unwrap()))
        .collect()
}

#[test]
fn qualify_spreads_its_rounds_over_the_span_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let bundle = qualify_fsync_bundle(
        &disk,
        &tmp.path().join("runs"),
        &["--rounds", "3", "--over", "4s"],
    );
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let fsync = probe_result(&run_json["nodes"][0], "fsync");
    let starts = round_starts(fsync);
    assert_eq!(starts.len(), 3, "{fsync}");
    // Due at 0, 2 and 4 s; stamps are whole seconds, so each start is at
    // most 1 s early on the stamp of the first.
    assert!(starts[1] - starts[0] >= 1, "{starts:?}");
    assert!(starts[2] - starts[0] >= 3, "{starts:?}");
    assert_eq!(run_json["plan"]["rounds"], 3, "{}", run_json["plan"]);
    assert_eq!(
        run_json["plan"]["rounds_over"], "4s",
        "{}",
        run_json["plan"]
    );
    assert_eq!(contract::assert_bundles_under(tmp.path()), 1);
}

/// `probe steal` for a second a round, N rounds over a span, as JSON.
fn steal_over<'a>(rounds: &'a str, over: &'a str) -> [&'a str; 11] {
    [
        "probe",
        "steal",
        "--duration",
        "1s",
        "--interval",
        "500ms",
        "--rounds",
        rounds,
        "--over",
        over,
        "--json",
    ]
}

#[test]
fn probe_spreads_its_rounds_over_the_span() {
    let r = run(&steal_over("2", "3s"));
    assert!(matches!(r.code, 0 | 1), "stderr: {}", r.stderr);
    let result: Value = serde_json::from_str(&r.stdout).unwrap();
    contract::assert_probe_result(&result);
    let starts = round_starts(&result);
    assert_eq!(starts.len(), 2);
    assert!(starts[1] - starts[0] >= 2, "{starts:?}");
}

#[test]
fn ctrl_c_during_a_wait_keeps_the_rounds_that_completed() {
    let child = infraqual()
        .args(steal_over("3", "10m"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Round 1 measures for a second, then the wait for round 2 (5 min).
    std::thread::sleep(Duration::from_secs(8));
    let asked = Instant::now();
    // SAFETY: signalling the child this test spawned and still owns.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let stopped_in = asked.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "cut short: {stderr}");
    assert!(
        stopped_in < Duration::from_secs(60),
        "the wait stops at Ctrl-C, not at round 2's start: {stopped_in:?}"
    );
    let result: Value = serde_json::from_str(&stdout).unwrap();
    contract::assert_probe_result(&result);
    let warnings: Vec<&str> = result["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1 of 3 rounds ran: cancelled")),
        "{warnings:?}"
    );
    assert!(result["facts"]["measured_seconds"].as_f64().unwrap() > 0.5);
}

#[test]
fn bad_spans_are_one_line_naming_the_flag_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let qualify = |extra: &[&str]| {
        let mut args = vec!["qualify", "--probes", "inventory", "--out", out];
        args.extend(extra);
        run(&args)
    };
    let probe = |extra: &[&str]| {
        let mut args = vec!["probe", "inventory"];
        args.extend(extra);
        run(&args)
    };
    for bad in ["0", "0s", "500ms", "soon", "25h", "1000d", "-5s", ""] {
        let extra = ["--rounds", "3", "--over", bad];
        assert_one_line_error(&qualify(&extra), "--over");
        assert_one_line_error(&probe(&extra), "--over");
    }
    for rounds in [None, Some("1")] {
        let mut extra = vec!["--over", "5m"];
        if let Some(n) = rounds {
            extra.extend(["--rounds", n]);
        }
        for r in [qualify(&extra), probe(&extra)] {
            assert_one_line_error(&r, "--over");
            assert!(r.stderr.contains("--rounds"), "{}", r.stderr);
        }
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_plan_spreads_a_probes_rounds_over_its_rounds_over() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let tf = "plan-alpha.token";
    std::fs::write(dir.path().join(tf), &a.token).unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"over\"\nout = \"runs\"\nrounds = 2\nrounds_over = \"3s\"\n\
             [[agents]]\nname = \"alpha\"\nurl = \"{}\"\ntoken_file = \"{tf}\"\n\
             [probes.steal]\nduration = \"1s\"\ninterval = \"500ms\"\n",
            a.url()
        ),
    )
    .unwrap();
    let r = run_in(&["run", plan.to_str().unwrap()], Some(dir.path()));
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    let steal = probe_result(node(&run, "alpha"), "steal");
    let starts = round_starts(steal);
    assert_eq!(starts.len(), 2, "{steal}");
    assert!(starts[1] - starts[0] >= 2, "due 3 s apart: {starts:?}");
    assert_eq!(run["plan"]["probes"]["steal"]["rounds_over"], "3s");
}
