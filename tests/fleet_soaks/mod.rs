//! What the fleet soak tests share: plans for agents on loopback's native
//! path, and reading a node's soak results from run.json.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::agents::{write_plan, Agent, PlanAgent};

pub fn plan_agent<'a>(name: &'a str, a: &Agent) -> PlanAgent<'a> {
    PlanAgent {
        name,
        url: a.url(),
        token: a.token.clone(),
    }
}

/// plan.toml in `dir` for `agents`, each at 127.0.0.1 on path `native`,
/// with `soak` (the `[soak]` section) and `extra` top-level keys.
pub fn loopback_plan(dir: &Path, agents: &[PlanAgent], soak: &str, extra: &str) -> PathBuf {
    let plan = write_plan(dir, agents, soak, extra);
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "labels = {",
        "addresses = { native = \"127.0.0.1\" }\nlabels = {",
    );
    std::fs::write(&plan, text).unwrap();
    plan
}

/// The node's result of `probe` in run.json.
pub fn soak_result<'a>(node: &'a serde_json::Value, probe: &str) -> &'a serde_json::Value {
    node["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == probe)
        .unwrap_or_else(|| panic!("a {probe} result: {node}"))
}

/// The points of the node's UDP rtt timeline to `other`: one per interval
/// whose rtt slice measured.
pub fn rtt_points<'a>(
    node: &'a serde_json::Value,
    name: &str,
    other: &str,
) -> &'a Vec<serde_json::Value> {
    let rtt = soak_result(node, "rtt");
    let series = format!("interval_p99_ns/{name}->{other}/native/udp");
    rtt["series"][&series]
        .as_array()
        .unwrap_or_else(|| panic!("{series}: {rtt}"))
}
