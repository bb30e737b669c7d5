//! `rounds = N` in a plan through real agents: round r of every probe on
//! every node before round r+1, pairwise probes included; each node's
//! rounds merged per probe; a cancelled run keeps the rounds that ran.

mod agents;
mod common;
mod contract;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agents::{http, node, run_json, Agent};
use common::{probe_result as result, run_in};
use serde_json::Value;

/// plan.toml for `agents` (name, agent), loopback as their native path.
fn write_plan(dir: &Path, agents: &[(&str, &Agent)], top: &str, probes: &str) -> String {
    let mut text = format!("name = \"rounds\"\nout = \"runs\"\n{top}\n");
    for (name, a) in agents {
        let tf = format!("plan-{name}.token");
        std::fs::write(dir.join(&tf), &a.token).unwrap();
        text.push_str(&format!(
            "[[agents]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_file = \"{tf}\"\n\
             addresses = {{ native = \"127.0.0.1\" }}\n",
            a.url()
        ));
    }
    text.push_str(probes);
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn starts(result: &Value) -> Vec<&str> {
    result["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .collect()
}

fn data_dir(dir: &Path, name: &str) -> String {
    let data = dir.join(format!("data-{name}"));
    std::fs::create_dir(&data).unwrap();
    data.to_str().unwrap().to_string()
}

#[test]
fn a_plan_with_rounds_runs_them_interleaved_per_node_and_merges_them() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Both agents run on this machine: one directory on the disk, allowed
    // to each (every fsync run works in its own subdirectory).
    let data = data_dir(dir.path(), "shared");
    let flags = ["--echo-listen", "127.0.0.1:0", "--allow-dir", &data];
    let a = Agent::start(dir.path(), "alpha", &flags);
    let b = Agent::start(dir.path(), "beta", &flags);
    // fsync's own `rounds` wins over the plan's.
    let probes = format!(
        "[probes.steal]\nduration = \"2s\"\ninterval = \"500ms\"\n\
         [probes.fsync]\ndir = \"{data}\"\nsize = \"256KiB\"\nrounds = 3\n\
         [probes.rtt]\npaths = [\"native\"]\ncount = 40\nkinds = [\"udp\"]\n"
    );
    let plan = write_plan(
        dir.path(),
        &[("alpha", &a), ("beta", &b)],
        "rounds = 2",
        &probes,
    );
    let r = run_in(&["run", &plan], Some(dir.path()));
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    for name in ["alpha", "beta"] {
        let n = node(&run, name);
        assert!(
            n["errors"].as_array().unwrap().is_empty(),
            "{name}: {}",
            n["errors"]
        );
        assert!(
            n["inventory"].get("rounds").is_none(),
            "the inventory runs once"
        );
        let steal = result(n, "steal");
        let fsync = result(n, "fsync");
        let rtt = result(n, "rtt");
        assert_eq!(steal["rounds"].as_array().unwrap().len(), 2, "{name}");
        assert_eq!(fsync["rounds"].as_array().unwrap().len(), 3, "{name}");
        assert_eq!(rtt["rounds"].as_array().unwrap().len(), 2, "{name}");
        for r in [steal, fsync, rtt] {
            for (key, merged) in r["metrics"].as_object().unwrap() {
                let count: u64 = r["rounds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|round| round["metrics"][key]["count"].as_u64().unwrap())
                    .sum();
                assert_eq!(merged["count"].as_u64(), Some(count), "{name} {key}");
            }
        }
        let sent: u64 = rtt["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|round| {
                let loss = round["facts"]["loss"].as_object().unwrap();
                loss.values()
                    .map(|l| l["sent"].as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        let merged_sent: u64 = rtt["facts"]["loss"]
            .as_object()
            .unwrap()
            .values()
            .map(|l| l["sent"].as_u64().unwrap())
            .sum();
        assert_eq!(merged_sent, sent, "{name}: loss summed over rounds");
        // Round 2 of steal starts after round 1 of fsync and rtt; fsync's
        // third round runs after every probe's second.
        let (s, f, t) = (starts(steal), starts(fsync), starts(rtt));
        assert!(
            s[0] <= f[0] && f[0] <= t[0] && t[0] <= s[1],
            "{s:?} {f:?} {t:?}"
        );
        assert!(
            s[1] <= f[1] && f[1] <= t[1] && t[1] <= f[2],
            "{s:?} {f:?} {t:?}"
        );
    }
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let plan_json = &run["plan"]["probes"];
    assert_eq!(plan_json["fsync"]["rounds"], 3);
    assert_eq!(plan_json["steal"]["rounds"], 2);
}

#[test]
fn a_cancelled_run_keeps_the_rounds_that_completed() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::start(dir.path(), "alpha", &[]);
    let probes = "[probes.steal]\nduration = \"2s\"\ninterval = \"500ms\"\nrounds = 4\n";
    let plan = write_plan(dir.path(), &[("alpha", &a)], "", probes);
    let coordinator = Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args(["run", &plan])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = "probe=\"steal\",outcome=\"done\"} 1";
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http(&a.addr, "GET", "/metrics", Some(&a.token), b"");
        // The first round done and the next running: the coordinator has
        // the first round's result.
        if body.contains(done) && body.contains("state=\"running\"} 1") {
            break;
        }
        assert!(Instant::now() < until, "no steal round finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &coordinator.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = coordinator.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a run cut short is incomplete");
    let run = run_json(dir.path());
    contract::assert_bundles_under(dir.path());
    assert_eq!(run["verdict"], "incomplete");
    let alpha = node(&run, "alpha");
    let steal = result(alpha, "steal");
    let ran = steal["rounds"].as_array().map_or(1, Vec::len);
    assert!((1..4).contains(&ran), "{ran} rounds kept");
    let warning = format!("{ran} of 4 rounds ran: cancelled");
    assert!(
        steal["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == &Value::from(warning.as_str())),
        "{}",
        steal["warnings"]
    );
    let errors = alpha["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["message"], warning.as_str());
}
