//! The fleet soak through `infraqual run`: a plan with `[soak]` makes two
//! real agents on loopback soak at once; the coordinator collects each
//! node's interval log and one run.json into one bundle. A coordinator that
//! is interrupted or killed leaves no agent soaking. Bad `[soak]` input
//! exits 2 with one line.

mod agents;
mod common;
mod contract;
mod fleet_soaks;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agents::{http, node, run_json, write_plan, Agent, PlanAgent};
use common::{assert_one_line_error, only_bundle, run_in};
use fleet_soaks::{loopback_plan, plan_agent, rtt_points, soak_result};
use infraqual::soak::hlog;

/// An agent allowed to write in `disk`, with an echo responder.
fn agent_with_disk(dir: &Path, name: &str, disk: &Path) -> Agent {
    Agent::start(
        dir,
        name,
        &["--allow-dir", disk.to_str().unwrap(), "--echo-port", "0"],
    )
}

/// `GET path` on the agent with its token: (status, body).
fn get(a: &Agent, path: &str) -> (u16, String) {
    http(&a.addr, "GET", path, Some(&a.token), b"")
}

fn soak_state(a: &Agent) -> String {
    let (code, body) = get(a, "/v1/soaks/soak-1");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["state"].as_str().unwrap().to_string()
}

fn no_job_running(a: &Agent) -> bool {
    !get(a, "/metrics").1.contains("state=\"running\"")
}

#[test]
fn two_agents_soak_into_one_bundle_with_a_log_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let a = agent_with_disk(d, "alpha", &disk);
    let b = agent_with_disk(d, "beta", &disk);
    let plan = loopback_plan(
        d,
        &[plan_agent("alpha", &a), plan_agent("beta", &b)],
        &format!(
            "[soak]\nfor = \"20s\"\nevery = \"5s\"\ndir = \"{}\"\npaths = [\"native\"]\n",
            disk.display()
        ),
        "",
    );
    let coordinator = Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args(["run", plan.to_str().unwrap()])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the soak runs, each agent refuses a second one.
    let until = Instant::now() + Duration::from_secs(20);
    while get(&a, "/v1/soaks/soak-1").0 != 200 {
        assert!(Instant::now() < until, "alpha never started its soak");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = http(
        &a.addr,
        "POST",
        "/v1/soaks",
        Some(&a.token),
        br#"{"for_ms":20000,"every_ms":5000}"#,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("one soak at a time"), "{body}");
    let out = coordinator.wait_with_output_in(Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{stdout}{stderr}"
    );

    let bundle = only_bundle(&d.join("runs"));
    contract::assert_bundles_under(d);
    let run = run_json(d);
    assert_eq!(run["plan"]["soak"]["every"], "5s");
    for name in ["alpha", "beta"] {
        let log = hlog::read(&bundle.join(format!("{name}.hlog"))).unwrap();
        assert!(
            (3..=4).contains(&log.intervals.len()),
            "{name}: {} intervals",
            log.intervals.len()
        );
        let n = node(&run, name);
        let steal = soak_result(n, "steal");
        assert_eq!(steal["facts"]["soak_intervals"], log.intervals.len() as u64);
        assert_eq!(
            steal["series"]["interval_pct/steal"]
                .as_array()
                .unwrap()
                .len(),
            log.intervals.len()
        );
        assert!(
            steal["verdicts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["check"] == "steal.pct.worst_window"),
            "{steal}"
        );
        assert!(
            n["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["probe"] == "fsync"
                    && r["series"]["interval_p99_ns/fdatasync"].is_array()),
            "{name} soaked the disk: {n}"
        );
        let other = if name == "alpha" { "beta" } else { "alpha" };
        assert_eq!(rtt_points(n, name, other).len(), log.intervals.len());
    }
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(html.contains("alpha") && html.contains("beta"));
    for agent in [&a, &b] {
        assert_eq!(soak_state(agent), "done");
        assert!(no_job_running(agent));
    }
}

trait WaitWithin {
    fn wait_with_output_in(self, limit: Duration) -> std::process::Output;
}

impl WaitWithin for std::process::Child {
    fn wait_with_output_in(mut self, limit: Duration) -> std::process::Output {
        let until = Instant::now() + limit;
        while self.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = self.kill();
                panic!("the coordinator did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_with_output().unwrap()
    }
}

/// `infraqual run` on a long soak plan (lease 2 s) for one agent.
fn long_soak(d: &Path, a: &Agent) -> Command {
    let plan = write_plan(
        d,
        &[plan_agent("alpha", a)],
        "[soak]\nfor = \"10m\"\nevery = \"4s\"\n",
        "lease = \"2s\"",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraqual"));
    cmd.args(["run", plan.to_str().unwrap()])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits until the first interval reached the bundle; returns its log.
fn first_interval(d: &Path) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(bundle) = std::fs::read_dir(d.join("runs"))
            .ok()
            .and_then(|mut e| e.next())
            .and_then(Result::ok)
            .map(|e| e.path())
        {
            let log = bundle.join("alpha.hlog");
            if hlog::read(&log).is_ok_and(|l| !l.intervals.is_empty()) {
                return log;
            }
        }
        assert!(Instant::now() < until, "no interval reached the bundle");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until the agent's soak is no longer running.
fn soak_ends(a: &Agent, within: Duration) -> String {
    let until = Instant::now() + within;
    loop {
        let state = soak_state(a);
        if state != "running" {
            return state;
        }
        assert!(
            Instant::now() < until,
            "the agent still soaks {within:?} after its coordinator went"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_coordinator_leaves_no_agent_soaking_and_keeps_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let mut coordinator = long_soak(dir.path(), &a).spawn().unwrap();
    let log = first_interval(dir.path());
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    // The lease (2 s) ends it, not the plan's 10 minutes.
    assert_eq!(soak_ends(&a, Duration::from_secs(30)), "cancelled");
    assert!(no_job_running(&a));
    let (_, body) = get(&a, "/v1/soaks/soak-1");
    assert!(body.contains("lease expired"), "{body}");
    assert!(!hlog::read(&log).unwrap().intervals.is_empty());
}

#[test]
fn an_interrupted_coordinator_cancels_the_soak_and_reports_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Agent::start(d, "alpha", &[]);
    let coordinator = long_soak(d, &a).spawn().unwrap();
    first_interval(d);
    // SAFETY: signalling a child this test started.
    unsafe {
        libc::kill(coordinator.id() as i32, libc::SIGINT);
    }
    let out = coordinator.wait_with_output_in(Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert_eq!(soak_ends(&a, Duration::from_secs(10)), "cancelled");
    assert!(no_job_running(&a));
    contract::assert_bundles_under(d);
    let run = run_json(d);
    let alpha = node(&run, "alpha");
    assert!(
        alpha["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("soak cancelled"),
        "{alpha}"
    );
    assert!(
        alpha["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["probe"] == "steal"),
        "the intervals that arrived are judged: {alpha}"
    );
}

#[test]
fn bad_soak_sections_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Agent::start(d, "alpha", &[]);
    for (section, needle) in [
        (
            "[soak]\nfor = \"10m\"\nevery = \"20m\"\n",
            "plan.toml:11:9: every 20m is longer than for 10m",
        ),
        (
            "[soak]\nfor = \"1h\"\nevery = \"1s\"\n",
            "plan.toml:11:9: every 1s: outside",
        ),
        (
            "[soak]\nfor = \"30days\"\n",
            "plan.toml:10:7: for 30days: outside",
        ),
        ("[soak]\nfor = \"soon\"\n", "plan.toml:10:7: for: "),
        (
            "[soak]\nevery = \"5m\"\n",
            "plan.toml:9:1: missing field `for`",
        ),
        (
            "[soak]\nfor = \"1h\"\ndir = \"data\"\n",
            "plan.toml:11:7: dir: an absolute path",
        ),
        (
            "[soak]\nfor = \"1h\"\nrate = 5\n",
            "plan.toml:11:1: unknown field `rate`",
        ),
        (
            "[soak]\nfor = \"1h\"\npaths = []\n",
            "plan.toml:11:9: paths: path names",
        ),
        (
            "[soak]\nfor = \"1h\"\n[probes.steal]\n",
            "plan.toml:9:1: [soak] and [probes.*] together",
        ),
    ] {
        let plan = write_plan(d, &[plan_agent("alpha", &a)], section, "");
        let r = run_in(&["run", plan.to_str().unwrap()], Some(d));
        assert_one_line_error(&r, needle);
        assert!(!d.join("runs").exists(), "nothing ran for {section}");
    }
}

#[test]
fn the_soak_routes_keep_the_agents_gates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let read_token = agents::random_token();
    let read_file = d.join("read.token");
    agents::write_private(&read_file, &read_token);
    let disk = d.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let a = Agent::start(
        d,
        "gate",
        &[
            "--allow-dir",
            disk.to_str().unwrap(),
            "--read-token-file",
            read_file.to_str().unwrap(),
        ],
    );
    let post =
        |token: &str, body: &str| http(&a.addr, "POST", "/v1/soaks", Some(token), body.as_bytes());
    let (code, body) = post(&read_token, r#"{"for_ms":20000,"every_ms":5000}"#);
    assert_eq!(code, 403, "a scraper's token cannot soak: {body}");
    assert!(body.contains("read-only"), "{body}");
    let (code, body) = post(&a.token, r#"{"for_ms":20000,"every_ms":5000,"dir":"/etc"}"#);
    assert_eq!(code, 403, "fsync slices stay inside --allow-dir: {body}");
    let (code, body) = post(&a.token, r#"{"for_ms":20000,"every_ms":30000}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("every 30s is longer than for 20s"), "{body}");
    let (code, body) = post(
        &a.token,
        r#"{"for_ms":20000,"every_ms":5000,"peers":[{"node":"x","path":"native","address":"192.0.2.1","port":7}]}"#,
    );
    assert_eq!(code, 403, "rtt peers must be allowed targets: {body}");
    let (code, _) = http(&a.addr, "GET", "/v1/soaks/soak-9", Some(&a.token), b"");
    assert_eq!(code, 404);
}

#[test]
fn a_soak_whose_logs_would_not_fit_in_out_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A week at 31 s intervals of a 400-node full mesh: each node's log
    // holds 399 peers' rtt histograms per interval, terabytes in all. The
    // agents are never contacted.
    let names: Vec<String> = (0..400).map(|i| format!("n{i}")).collect();
    let agents: Vec<PlanAgent> = names
        .iter()
        .map(|name| PlanAgent {
            name,
            url: "http://127.0.0.1:9".into(),
            token: "t".repeat(32),
        })
        .collect();
    let plan = loopback_plan(
        d,
        &agents,
        "[soak]\nfor = \"7d\"\nevery = \"31s\"\npaths = [\"native\"]\n",
        "",
    );
    let r = run_in(&["run", plan.to_str().unwrap()], Some(d));
    assert_one_line_error(&r, "this soak's bundle needs about");
    assert!(r.stderr.contains("TB"), "{}", r.stderr);
    assert!(
        std::fs::read_dir(d.join("runs")).map_or(true, |mut e| e.next().is_none()),
        "no bundle was made"
    );
}
