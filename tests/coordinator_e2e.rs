//! `infraqual agent` and `infraqual run` end to end: real processes, real
//! sockets, failures injected with kill -9.

mod agents;
mod common;
mod contract;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agents::{http, node, run_json, write_plan, Agent, PlanAgent};
use common::{assert_one_line_error, run_in};

fn plan_agent<'a>(name: &'a str, a: &Agent) -> PlanAgent<'a> {
    PlanAgent {
        name,
        url: a.url(),
        token: a.token.clone(),
    }
}

#[test]
fn two_agents_produce_one_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let b = Agent::start(dir.path(), "beta", &[]);
    let plan = write_plan(
        dir.path(),
        &[plan_agent("alpha", &a), plan_agent("beta", &b)],
        "[probes.inventory]\n",
        "",
    );
    let r = run_in(
        &["run", plan.to_str().unwrap(), "--save-baseline", "fleet"],
        Some(dir.path()),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    assert_eq!(run["verdict"], "pass");
    let baseline = dir.path().join("runs/baselines/fleet/run.json");
    assert!(baseline.is_file(), "the run is saved as a baseline");
    for name in ["alpha", "beta"] {
        let n = node(&run, name);
        assert_eq!(n["inventory"]["probe"], "inventory");
        assert_eq!(
            n["inventory"]["node"], name,
            "the agent's node name is kept"
        );
        assert_eq!(n["labels"]["region"], "lab");
        assert!(n["errors"].as_array().unwrap().is_empty());
    }
    assert!(r.stdout.contains("report: "));
}

#[test]
fn wrong_token_is_401_and_a_clear_coordinator_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let b = Agent::start(dir.path(), "beta", &[]);
    let (status, _) = http(
        &a.addr,
        "GET",
        "/v1/health",
        Some("0000000000000000000000000000dead"),
        b"",
    );
    assert_eq!(status, 401);
    let (status, _) = http(&a.addr, "GET", "/v1/health", None, b"");
    assert_eq!(status, 401);

    let mut wrong = plan_agent("beta", &b);
    wrong.token = "f".repeat(32);
    let plan = write_plan(dir.path(), &[plan_agent("alpha", &a), wrong], "", "");
    let r = run_in(&["run", plan.to_str().unwrap()], Some(dir.path()));
    assert_eq!(r.code, 2, "an agent that fails makes the run incomplete");
    assert!(
        r.stdout.contains("401"),
        "the table names the refusal: {}",
        r.stdout
    );
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    assert_eq!(run["verdict"], "incomplete");
    let beta = node(&run, "beta");
    let message = beta["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("401") && message.contains("beta"),
        "{message}"
    );
    assert!(
        node(&run, "alpha")["inventory"].is_object(),
        "the healthy agent's results are kept"
    );
}

#[test]
fn malformed_oversized_and_forbidden_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let a = Agent::start(
        dir.path(),
        "alpha",
        &["--allow-dir", allowed.to_str().unwrap()],
    );
    let t = Some(a.token.as_str());

    let (status, body) = http(&a.addr, "POST", "/v1/jobs", t, b"{ not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid job request"));

    let (status, body) = http(&a.addr, "POST", "/v1/jobs", t, br#"{"probe":"warp"}"#);
    assert_eq!(status, 400, "{body}");

    let (status, body) = http(
        &a.addr,
        "POST",
        "/v1/jobs",
        t,
        br#"{"probe":"inventory","params":{"x":1}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field"), "{body}");

    let big = vec![b' '; 2 << 20];
    let (status, _) = http(&a.addr, "POST", "/v1/jobs", t, &big);
    assert_eq!(status, 413);

    let outside = serde_json::json!({"probe": "fsync", "params": {"dir": "/tmp"}}).to_string();
    let (status, body) = http(&a.addr, "POST", "/v1/jobs", t, outside.as_bytes());
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("outside the agent's allowed directories"),
        "{body}"
    );

    let (status, body) = http(&a.addr, "GET", "/v1/jobs/nope-1", t, b"");
    assert_eq!(status, 404, "{body}");
    let (status, _) = http(&a.addr, "GET", "/nowhere", t, b"");
    assert_eq!(status, 404);

    let (status, body) = http(&a.addr, "GET", "/metrics", t, b"");
    assert_eq!(status, 200);
    assert!(body.contains("infraqual_up{node=\"alpha\"} 1"), "{body}");
}

#[test]
fn an_agent_killed_mid_job_is_reported_failed_and_the_other_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let mut b = Agent::start(dir.path(), "beta", &[]);
    let plan = write_plan(
        dir.path(),
        &[plan_agent("alpha", &a), plan_agent("beta", &b)],
        "[probes.steal]\nduration = \"4s\"\n",
        "lease = \"3s\"",
    );
    let coordinator = Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args(["run", plan.to_str().unwrap()])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill beta once its steal job is running: its inventory has finished
    // (its verdicts are in /metrics) and a job runs again.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http(&b.addr, "GET", "/metrics", Some(&b.token), b"");
        if body.contains("state=\"running\"") && body.contains("check=\"inventory.") {
            break;
        }
        assert!(Instant::now() < until, "beta never ran a job");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.kill();
    let out = coordinator.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    assert_eq!(run["verdict"], "incomplete");
    let alpha = node(&run, "alpha");
    assert_eq!(
        alpha["results"][0]["probe"], "steal",
        "alpha's result is kept"
    );
    let beta = node(&run, "beta");
    let message = beta["errors"][0]["message"].as_str().unwrap();
    assert_eq!(beta["errors"][0]["probe"], "steal", "{beta}");
    assert!(message.contains("stopped answering"), "{message}");
    let bundle = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(
        html.contains("stopped answering"),
        "the report shows the failure"
    );
}

#[test]
fn a_coordinator_killed_mid_job_leaves_no_fsync_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let a = Agent::start(
        dir.path(),
        "alpha",
        &["--allow-dir", data.to_str().unwrap()],
    );
    let probes = format!(
        "[probes.fsync]\ndir = \"{}\"\nsize = \"1GiB\"\nduration = \"60s\"\n",
        data.display()
    );
    let plan = write_plan(
        dir.path(),
        &[plan_agent("alpha", &a)],
        &probes,
        "lease = \"2s\"",
    );
    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args(["run", plan.to_str().unwrap()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while walk_count(&data) == 0 {
        assert!(Instant::now() < until, "the fsync job never wrote a file");
        std::thread::sleep(Duration::from_millis(20));
    }
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();

    // The agent removes the probe's files first and records the job as
    // cancelled after, so the files being gone says nothing yet about the
    // record: wait for the record, then every file must already be gone.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = http(&a.addr, "GET", "/metrics", Some(&a.token), b"");
        if metrics.lines().any(|l| {
            l.starts_with("infraqual_probe_runs_total{")
                && l.contains("probe=\"fsync\",outcome=\"cancelled\"} 1")
        }) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the job was not cancelled after the lease expired: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        walk_count(&data),
        0,
        "files left behind a cancelled job: {:?}",
        std::fs::read_dir(&data).unwrap().collect::<Vec<_>>()
    );
    contract::assert_bundles_under(dir.path());
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

#[test]
fn agent_refuses_to_listen_beyond_loopback_without_a_token() {
    let r = common::run(&["agent", "--listen", "0.0.0.0:0"]);
    assert_one_line_error(&r, "--token-file is required");
}

#[test]
fn plan_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"x\"\n[[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n[probes.steal]\nduration = \"soon\"\n",
    )
    .unwrap();
    let r = run_in(&["run", plan.to_str().unwrap()], Some(dir.path()));
    assert_one_line_error(&r, "plan.toml:5:1");
    assert!(r.stderr.contains("invalid duration"), "{}", r.stderr);
    assert!(
        !dir.path().join("runs").exists(),
        "nothing written for a bad plan"
    );
}

#[test]
fn unreachable_agent_is_reported_and_the_run_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ghost = PlanAgent {
        name: "ghost",
        url: format!("http://127.0.0.1:{port}"),
        token: "0".repeat(32),
    };
    let plan = write_plan(dir.path(), &[plan_agent("alpha", &a), ghost], "", "");
    let r = run_in(&["run", plan.to_str().unwrap()], Some(dir.path()));
    assert_eq!(r.code, 2);
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    let message = node(&run, "ghost")["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(node(&run, "alpha")["inventory"].is_object());
}
