//! A real Prometheus (Debian's `prometheus`, on loopback with a temporary
//! config and data directory) scrapes a real agent after an fsync job:
//! `histogram_quantile(0.99, ...)` agrees with the agent's own p99 within the
//! bucket it falls in, and `promtool` accepts the exposition, the alert rules
//! and reads the dashboard's queries.

mod agents;
mod prometheus;

use std::path::Path;
use std::time::{Duration, Instant};

use agents::{http, Agent};
use prometheus::{bucket_around, promtool, query_value, start_prometheus};

fn run_fsync_job(agent: &Agent, dir: &Path) -> serde_json::Value {
    let job = serde_json::json!({
        "probe": "fsync",
        "params": {"dir": dir, "duration": "2s", "size": "16MiB"},
    });
    let t = Some(agent.token.as_str());
    let (status, body) = http(
        &agent.addr,
        "POST",
        "/v1/jobs",
        t,
        job.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http(&agent.addr, "GET", &format!("/v1/jobs/{id}"), t, b"");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["state"] == "done" {
            return status["result"].clone();
        }
        assert_eq!(status["state"], "running", "{body}");
        assert!(Instant::now() < until, "the fsync job never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_histogram_quantile_agrees_with_the_agents_p99() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let agent = Agent::start(
        dir.path(),
        "prom-1",
        &["--allow-dir", disk.to_str().unwrap()],
    );
    let result = run_fsync_job(&agent, &disk);
    let p99_ns = result["metrics"]["fdatasync"]["p99"].as_u64().unwrap();
    let count = result["metrics"]["fdatasync"]["count"].as_u64().unwrap();

    let (status, exposition) = http(&agent.addr, "GET", "/metrics", Some(&agent.token), b"");
    assert_eq!(status, 200);
    assert!(!exposition.contains("quantile="), "{exposition}");
    let (ok, text) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(ok, "promtool check metrics: {text}\n{exposition}");

    let (prom, prom_addr) =
        start_prometheus(dir.path(), &agent.addr, &dir.path().join("prom-1.token"));
    let scraped = query_value(
        &prom_addr,
        "infraqual_fsync_latency_seconds_count{metric=\"fdatasync\",node=\"prom-1\"}",
        Duration::from_secs(60),
    );
    assert_eq!(scraped as u64, count, "Prometheus holds every sample");
    let from_prometheus = query_value(
        &prom_addr,
        "histogram_quantile(0.99, infraqual_fsync_latency_seconds_bucket{metric=\"fdatasync\",node=\"prom-1\"})",
        Duration::from_secs(10),
    );
    drop(prom);

    // The bucket the agent's p99 lies in (HdrHistogram's 0.1 % resolution
    // allowed at its edges) must hold Prometheus' interpolated answer.
    let p99 = p99_ns as f64 / 1e9;
    let (lower, upper) = bucket_around(
        &exposition,
        "infraqual_fsync_latency_seconds_bucket{node=\"prom-1\",metric=\"fdatasync\"",
        p99,
    );
    eprintln!(
        "agent p99 {p99} s, histogram_quantile {from_prometheus} s, bucket ({lower}, {upper}]"
    );
    assert!(
        from_prometheus >= lower * 0.999 && from_prometheus <= upper * 1.001,
        "histogram_quantile {from_prometheus} s outside the agent's p99 bucket ({lower}, {upper}] (p99 {p99} s)"
    );
}

#[test]
fn shipped_alert_rules_and_dashboard_pass_promtool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("deploy/prometheus/infraqual-rules.yml");
    let (ok, text) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules: {text}");

    // Every dashboard query must parse as PromQL: promtool checks each as
    // the expression of a recording rule.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/infraqual-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().replace("$node", ".*"));
        }
    }
    assert!(exprs.len() >= 5);
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        yaml.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, yaml).unwrap();
    let (ok, text) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "dashboard queries: {text}");
}
