//! A fleet soak survives its coordinator: `infraqual run PLAN --out DIR`
//! again after the coordinator was killed with -9 continues the soak in
//! the same bundle. Two real agents on loopback; the coordinator is killed
//! twice, once restarted at once (the agents' soaks still run under their
//! lease: what they measured meanwhile is collected, they are ended and new
//! ones continue the logs, never a 409) and once after the lease ran out
//! (a gap the results state). Bad input: a DIR holding another plan's
//! unfinished soak, or one whose coordinator still runs, exits 2 with one
//! line.

mod agents;
mod common;
mod contract;
mod fleet_soaks;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agents::{http, node, run_json, Agent, PlanAgent};
use common::{assert_one_line_error, only_bundle, run_in};
use fleet_soaks::{loopback_plan, plan_agent, rtt_points, soak_result};
use infraqual::soak::hlog;

const FOR_SECONDS: f64 = 40.0;
const EVERY_SECONDS: f64 = 4.0;

/// The soak plan in `dir` for both agents on loopback's native path.
fn soak_plan(dir: &Path, agents: &[(&str, &Agent)], disk: &Path, for_: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let listed: Vec<PlanAgent> = agents.iter().map(|(n, a)| plan_agent(n, a)).collect();
    loopback_plan(
        dir,
        &listed,
        &format!(
            "[soak]\nfor = \"{for_}\"\nevery = \"4s\"\ndir = \"{}\"\npaths = [\"native\"]\n",
            disk.display()
        ),
        "lease = \"3s\"",
    )
}

/// `infraqual run PLAN --out OUT`, its stderr into `stderr`.
fn coordinator(plan: &Path, out: &Path, stderr: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

fn intervals(log: &Path) -> usize {
    hlog::read(log).map(|l| l.intervals.len()).unwrap_or(0)
}

/// Waits until every node's log in the bundle holds `n` intervals.
fn until_logs_hold(out: &Path, n: usize) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(bundle) = std::fs::read_dir(out)
            .ok()
            .and_then(|mut e| e.next())
            .and_then(Result::ok)
            .map(|e| e.path())
        {
            if ["alpha", "beta"]
                .iter()
                .all(|name| intervals(&bundle.join(format!("{name}.hlog"))) >= n)
            {
                return bundle;
            }
        }
        assert!(Instant::now() < until, "the logs never held {n} intervals");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn soak_state(a: &Agent, id: &str) -> String {
    let (code, body) = http(
        &a.addr,
        "GET",
        &format!("/v1/soaks/{id}"),
        Some(&a.token),
        b"",
    );
    assert_eq!(code, 200, "{id}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["state"].as_str().unwrap().to_string()
}

fn wait_exit(mut child: Child, limit: Duration) -> i32 {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the coordinator did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_coordinators_soak_continues_in_the_same_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let a = Agent::start(
        d,
        "alpha",
        &["--allow-dir", disk.to_str().unwrap(), "--echo-port", "0"],
    );
    let b = Agent::start(
        d,
        "beta",
        &["--allow-dir", disk.to_str().unwrap(), "--echo-port", "0"],
    );
    let both = [("alpha", &a), ("beta", &b)];
    let plan = soak_plan(d, &both, &disk, "40s");
    let out = d.join("runs");
    let started = Instant::now();

    // Killed after two intervals, started again at once: the agents still
    // soak under their lease.
    let first = coordinator(&plan, &out, &d.join("first.stderr"));
    let bundle = until_logs_hold(&out, 2);
    kill_9(first);
    let logs_at_kill: Vec<String> = ["alpha", "beta"]
        .iter()
        .map(|n| std::fs::read_to_string(bundle.join(format!("{n}.hlog"))).unwrap())
        .collect();
    let second = coordinator(&plan, &out, &d.join("second.stderr"));
    let at_kill = intervals(&bundle.join("alpha.hlog"));
    until_logs_hold(&out, at_kill + 2);
    // A second coordinator for the same soak is refused while one runs.
    let again = run_in(
        &[
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(d),
    );
    assert_one_line_error(&again, "is still running");

    // Killed again and left dead past the lease: the agents end their
    // soaks, and the log has a hole.
    kill_9(second);
    let dead_from = Instant::now();
    let other = soak_plan(&d.join("other"), &both, &disk, "30s");
    let refused = run_in(
        &[
            "run",
            other.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(d),
    );
    assert_one_line_error(&refused, "holds an unfinished soak of another plan");
    for agent in [&a, &b] {
        let until = Instant::now() + Duration::from_secs(30);
        while soak_state(agent, "soak-2") == "running" {
            assert!(Instant::now() < until, "the lease never ended soak-2");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let dead_for = dead_from.elapsed().as_secs_f64();
    let third = coordinator(&plan, &out, &d.join("third.stderr"));
    let code = wait_exit(third, Duration::from_secs(90));
    let wall = started.elapsed().as_secs_f64();

    let second_err = std::fs::read_to_string(d.join("second.stderr")).unwrap();
    let third_err = std::fs::read_to_string(d.join("third.stderr")).unwrap();
    assert!(matches!(code, 0 | 1), "exit {code}: {third_err}");
    for (stderr, how) in [
        (&second_err, "was still running; ended it"),
        (&third_err, "had ended"),
    ] {
        assert!(stderr.contains("soak: continuing"), "{stderr}");
        assert!(
            stderr.contains("soak: alpha: collected") && stderr.contains(how),
            "{stderr}"
        );
        assert!(
            !stderr.contains("409") && !stderr.contains("busy"),
            "{stderr}"
        );
    }
    assert_eq!(only_bundle(&out), bundle, "one bundle, continued");
    contract::assert_bundles_under(d);

    let run = run_json(d);
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        let path = bundle.join(format!("{name}.hlog"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&logs_at_kill[i]),
            "{name}: appended, never rewritten"
        );
        assert_eq!(
            text.matches("#[Histogram log format").count(),
            1,
            "{name}: one header"
        );
        let log = hlog::read(&path).unwrap();
        for pair in log.intervals.windows(2) {
            let end = pair[0].facts.start + pair[0].facts.length;
            assert!(
                pair[1].facts.start >= end - 0.01,
                "{name}: stamps go forward: {pair:?}"
            );
        }
        let first = &log.intervals[0].facts;
        let span = log.end() - first.start;
        assert!(
            span <= FOR_SECONDS + EVERY_SECONDS,
            "{name}: a restart does not stretch the soak past its `for`: {span} s"
        );
        assert!(
            log.end() < wall + 1.0,
            "{name}: the log ends within the test's {wall} s"
        );
        let gaps = infraqual::soak::gaps::find(&log);
        let longest = gaps.iter().map(|g| g.seconds).fold(0.0, f64::max);
        assert!(
            longest >= 1.0 && longest <= dead_for + EVERY_SECONDS + 10.0,
            "{name}: the time nobody measured shows ({gaps:?}, dead for {dead_for} s)"
        );

        let n = node(&run, name);
        let steal = soak_result(n, "steal");
        assert_eq!(steal["facts"]["soak_intervals"], log.intervals.len() as u64);
        assert_eq!(
            steal["series"]["interval_pct/steal"]
                .as_array()
                .unwrap()
                .len(),
            log.intervals.len(),
            "{name}: the timeline covers the whole span"
        );
        assert!(steal["facts"]["soak_gap_seconds"].as_f64().unwrap() >= longest);
        assert!(
            steal["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("the soak was interrupted")),
            "{steal}"
        );
        let other = if *name == "alpha" { "beta" } else { "alpha" };
        assert_eq!(
            rtt_points(n, name, other).len(),
            log.intervals.len(),
            "{name}: rtt in every interval of every coordinator"
        );
    }
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(html.contains("the soak was interrupted"));
    for agent in [&a, &b] {
        assert_eq!(soak_state(agent, "soak-3"), "done");
    }
    assert!(
        !bundle.join("soak.json").exists()
            || !std::fs::read_to_string(bundle.join("soak.json"))
                .unwrap()
                .contains("soak_id"),
        "no agent soak left to collect"
    );
}
