use std::path::Path;

use super::*;
use crate::coordinator::plan::Plan;

const PLAN: &str = r#"name = "k8s"
[discover]
dns_server = "192.0.2.53"

[[discover.services]]
name = "agent.infraqual.svc.cluster.local"
port = 7070
path = "overlay"

[[discover.services]]
name = "agent-host.infraqual.svc.cluster.local"
port = 7071
path = "native"
"#;

fn discover_plan() -> DiscoverPlan {
    Plan::parse(PLAN, "plan.toml", Path::new("/nonexistent"))
        .unwrap()
        .discover
        .unwrap()
}

fn health(node: &str, pod: &str, host: &str, echo: u16) -> Health {
    Health {
        version: crate::api::VERSION.into(),
        node: node.into(),
        probes: Vec::new(),
        echo_port: Some(echo),
        netns: None,
        pod_ip: pod.parse().ok(),
        host_ip: host.parse().ok(),
        labels: [("zone".to_string(), node.to_string())].into(),
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn pod_and_host_agents_of_a_node_pair_and_the_host_agent_runs_jobs() {
    let d = discover_plan();
    let answers = vec![
        (
            0,
            ip("10.244.1.5"),
            Ok(health("n1", "10.244.1.5", "192.168.0.1", 7072)),
        ),
        (
            1,
            ip("192.168.0.1"),
            Ok(health("n1", "192.168.0.1", "192.168.0.1", 7073)),
        ),
        (
            0,
            ip("10.244.2.5"),
            Ok(health("n2", "10.244.2.5", "192.168.0.2", 7072)),
        ),
        (1, ip("192.168.0.3"), Err("connection refused".to_string())),
    ];
    let (agents, problems) = pair(&d, answers);
    assert_eq!(agents.len(), 2);
    let n1 = &agents[0];
    assert_eq!(n1.name, "n1");
    assert_eq!(n1.url.to_string(), "http://192.168.0.1:7071/");
    assert_eq!(n1.addresses["overlay"].to_string(), "10.244.1.5");
    assert_eq!(n1.addresses["native"].to_string(), "192.168.0.1");
    assert_eq!(
        (n1.echo_ports["overlay"], n1.echo_ports["native"]),
        (7072, 7073)
    );
    assert_eq!(n1.labels["zone"], "n1");
    // Without a hostNetwork agent the first service's agent runs the jobs.
    assert_eq!(agents[1].url.to_string(), "http://10.244.2.5:7070/");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "192.168.0.3:7071");
    assert!(problems[0].1.contains("connection refused"), "{problems:?}");
}

#[test]
fn a_second_agent_of_one_node_on_one_path_is_reported() {
    let d = discover_plan();
    let answers = vec![
        (
            0,
            ip("10.244.1.5"),
            Ok(health("n1", "10.244.1.5", "192.168.0.1", 1)),
        ),
        (
            0,
            ip("10.244.1.6"),
            Ok(health("n1", "10.244.1.6", "192.168.0.1", 1)),
        ),
    ];
    let (agents, problems) = pair(&d, answers);
    assert_eq!(agents.len(), 1);
    assert!(
        problems[0].1.contains("second agent of node n1"),
        "{problems:?}"
    );
}

#[test]
fn appearing_and_vanishing_agents_are_reported_once() {
    let d = discover_plan();
    let answers = vec![
        (
            0,
            ip("10.244.1.5"),
            Ok(health("n1", "10.244.1.5", "192.168.0.1", 1)),
        ),
        (
            1,
            ip("192.168.0.1"),
            Ok(health("n1", "192.168.0.1", "192.168.0.1", 1)),
        ),
    ];
    let (agents, _) = pair(&d, answers);
    let mut watch = Watch::new(&d, &agents);
    assert!(watch
        .diff(&d, &[vec![ip("10.244.1.5")], vec![ip("192.168.0.1")]])
        .is_empty());
    let now = [vec![ip("10.244.1.5"), ip("10.244.3.5")], vec![]];
    let changes = watch.diff(&d, &now);
    assert_eq!(
        changes,
        vec![
            Change::Appeared {
                member: Member {
                    path: "overlay".into(),
                    address: ip("10.244.3.5")
                },
                service: "agent.infraqual.svc.cluster.local".into(),
            },
            Change::Vanished {
                node: "n1".into(),
                member: Member {
                    path: "native".into(),
                    address: ip("192.168.0.1")
                },
                service: "agent-host.infraqual.svc.cluster.local".into(),
            },
        ]
    );
    assert!(watch.diff(&d, &now).is_empty(), "reported twice");
}

#[test]
fn discover_with_agents_is_ambiguous_and_located() {
    let text = format!("{PLAN}\n[[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n");
    let e = Plan::parse(&text, "plan.toml", Path::new("/nonexistent")).unwrap_err();
    assert!(e.message.contains("[discover] and [[agents]]"), "{e}");
    assert!(e.line >= 2 && e.column >= 1, "{e}");
}

#[test]
fn bad_discover_values_are_located() {
    let e = Plan::parse(
        &PLAN.replace("port = 7071", "port = 70000"),
        "plan.toml",
        Path::new("/"),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (12, 8), "{e}");
    let e = Plan::parse(
        &PLAN.replace("\"native\"", "\"overlay\""),
        "plan.toml",
        Path::new("/"),
    )
    .unwrap_err();
    assert!(e.message.contains("discovered twice"), "{e}");
    let e = Plan::parse(
        &PLAN.replace("\"192.0.2.53\"", "\"dns.example\""),
        "plan.toml",
        Path::new("/"),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (3, 14), "{e}");
}
