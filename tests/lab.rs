//! The lab's ground truth (root: network namespaces): overlay costs more than
//! native, regions add their configured delays, the MTU black-hole fault is
//! found (and a healthy lab is not), `lab down` leaves nothing behind, and
//! `infraqual run` works on the plan the lab writes.

mod common;
mod contract;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use infraqual::lab::{self, Fault, LabGuard, LabSpec, Region};
use infraqual_probes::rtt::responder::EchoResponder;
use infraqual_probes::rtt::{Kind, Target};
use infraqual_probes::system::netns;
use infraqual_probes::{require_caps, CancelToken, ProbeContext, ProbeResult, Status};

const PORT: u16 = 7071;

fn spec(base: &Path, nodes: usize) -> LabSpec {
    LabSpec {
        nodes,
        regions: Vec::new(),
        fault: None,
        base: base.to_path_buf(),
        agents: false,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_infraqual")),
        echo_port: PORT,
    }
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    netns::run_on_thread(ns, "iq-lab-test", f).unwrap()
}

fn responder_in(ns: &str) -> EchoResponder {
    in_netns(ns, || {
        EchoResponder::start(
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)),
            CancelToken::new(),
        )
        .unwrap()
    })
}

fn targets(lab: &lab::Lab, to: usize) -> Vec<Target> {
    let n = &lab.state.nodes[to];
    ["native", "overlay"]
        .into_iter()
        .map(|path| Target {
            node: n.name.clone(),
            path: path.into(),
            address: if path == "native" {
                &n.native
            } else {
                &n.overlay
            }
            .parse()
            .unwrap(),
            port: PORT,
        })
        .collect()
}

fn rtt_from(lab: &lab::Lab, from: usize, to: usize, count: u32) -> ProbeResult {
    let params = infraqual_probes::rtt::Params {
        targets: targets(lab, to),
        count,
        kinds: vec![Kind::Udp],
        ..Default::default()
    };
    let node = lab.state.nodes[from].name.clone();
    let result = in_netns(&lab.state.nodes[from].pod_netns, move || {
        let ctx = ProbeContext::new(&node, infraqual_probes::Profile::default());
        infraqual_probes::rtt::run(&params, &ctx).unwrap()
    });
    contract::assert_probe_result(&serde_json::to_value(&result).unwrap());
    result
}

fn mtu_from(lab: &lab::Lab, from: usize, to: usize) -> ProbeResult {
    let params = infraqual_probes::mtu::Params {
        targets: targets(lab, to),
        ..Default::default()
    };
    let node = lab.state.nodes[from].name.clone();
    let result = in_netns(&lab.state.nodes[from].pod_netns, move || {
        let ctx = ProbeContext::new(&node, infraqual_probes::Profile::default());
        infraqual_probes::mtu::run(&params, &ctx).unwrap()
    });
    contract::assert_probe_result(&serde_json::to_value(&result).unwrap());
    result
}

fn host_ipv4_addresses() -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Interface names in the host namespace.
fn host_links() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    names.sort();
    names
}

fn namespaces_of(id: &str) -> Vec<String> {
    netns::names_with_prefix(&netns::prefix(id))
}

#[test]
fn overlay_costs_more_than_native_no_black_hole_and_down_leaves_nothing() {
    require_caps!(NetAdmin, SysAdmin);
    let base = tempfile::tempdir().unwrap();
    let links = host_links();
    let lab = LabGuard(lab::up(&spec(base.path(), 2)).unwrap());
    let id = lab.state.id.clone();
    assert_eq!(
        host_links(),
        links,
        "every lab link lives in a lab namespace"
    );
    assert_eq!(namespaces_of(&id).len(), 5, "2 nodes + 2 pods + 1 switch");
    let host = host_ipv4_addresses();
    assert!(
        !host.contains("198.18.") && !host.contains("198.19."),
        "host untouched: {host}"
    );

    let responder = responder_in(&lab.state.nodes[1].pod_netns);
    let r = rtt_from(&lab, 0, 1, 3000);
    let native = &r.metrics["node-1->node-2/native/udp"];
    let overlay = &r.metrics["node-1->node-2/overlay/udp"];
    eprintln!(
        "native p50 {} ns p99 {} ns; overlay p50 {} ns p99 {} ns",
        native.p50, native.p99, overlay.p50, overlay.p99
    );
    assert!(
        overlay.p50 > native.p50,
        "VXLAN encapsulation costs something"
    );
    assert!(
        r.facts["overlay_overhead_us"]["node-1->node-2"]["p50_us"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(r.facts["loss"]["node-1->node-2/overlay"]["lost"], 0);

    let m = mtu_from(&lab, 0, 1);
    for path in ["native", "overlay"] {
        let p = &m.facts["paths"][format!("node-1->node-2/{path}")];
        assert_eq!(p["iface_mtu"], 1450, "{path}: pods get the overlay MTU");
        assert_eq!(p["max_packet"], 1450, "{path}: {p}");
        assert_eq!(p["blackhole"], false, "{path}");
    }
    assert_eq!(m.verdicts[0].status, Status::Pass);
    drop(responder);

    let report = lab::down_dir(&lab.dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(namespaces_of(&id).is_empty(), "no namespace left");
    assert!(!lab.dir.exists(), "state removed");
    assert_eq!(host_ipv4_addresses(), host, "host addresses unchanged");
    assert_eq!(host_links(), links, "host links unchanged");
    // A second down (as after a crash) is harmless; the guard runs it too.
}

/// A busy loop on one CPU for as long as it lives.
struct CpuHog(std::process::Child);

impl CpuHog {
    fn start() -> CpuHog {
        let child = std::process::Command::new("taskset")
            .args(["-c", "0", "sh", "-c", "while :; do :; done"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        CpuHog(child)
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn overlay_overhead_stays_positive_with_a_cpu_hog_during_the_run() {
    // The situation that flipped the sign when native was measured before
    // overlay: load that comes and goes during the run. Interleaved rounds
    // and matched blocks keep it out of the difference.
    require_caps!(NetAdmin, SysAdmin);
    let base = tempfile::tempdir().unwrap();
    let lab = LabGuard(lab::up(&spec(base.path(), 2)).unwrap());
    let responder = responder_in(&lab.state.nodes[1].pod_netns);
    let hog = CpuHog::start();
    let r = rtt_from(&lab, 0, 1, 2000);
    drop(hog);
    drop(responder);
    let matched = &r.facts["overlay_overhead_matched"]["node-1->node-2"]["udp"];
    eprintln!("matched overlay overhead: {matched}");
    assert_eq!(matched["measurable"], true, "{matched}");
    let ci = matched["ci95_us"].as_array().unwrap();
    assert!(
        ci[0].as_f64().unwrap() > 0.0,
        "interval excludes zero: {matched}"
    );
    assert!(
        matched["summary"]
            .as_str()
            .unwrap()
            .starts_with("overlay costs +"),
        "{matched}"
    );
    let report = lab::down_dir(&lab.dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn mtu_blackhole_fault_is_found_with_the_fix() {
    require_caps!(NetAdmin, SysAdmin);
    let base = tempfile::tempdir().unwrap();
    let mut s = spec(base.path(), 2);
    s.fault = Some(Fault::MtuBlackhole);
    let lab = LabGuard(lab::up(&s).unwrap());
    let _responder = responder_in(&lab.state.nodes[1].pod_netns);
    let m = mtu_from(&lab, 0, 1);
    let overlay = &m.facts["paths"]["node-1->node-2/overlay"];
    assert_eq!(overlay["iface_mtu"], 1500, "{overlay}");
    assert_eq!(overlay["max_packet"], 1450, "{overlay}");
    assert_eq!(overlay["icmp_seen"], false);
    assert_eq!(overlay["blackhole"], true);
    let native = &m.facts["paths"]["node-1->node-2/native"];
    assert_eq!(
        native["max_packet"], 1500,
        "the underlay carries 1500: {native}"
    );
    assert_eq!(native["blackhole"], false);
    let v = &m.verdicts[0];
    assert_eq!(
        (v.check.as_str(), v.status),
        ("mtu.blackhole", Status::Fail)
    );
    assert!(v.note.contains("set the overlay MTU to 1450"), "{}", v.note);
}

/// Oslo 1 ms and Frankfurt 12 ms one way from the WAN hub: 26 ms between.
fn oslo_and_frankfurt() -> Vec<Region> {
    [("oslo", 1), ("frankfurt", 12)]
        .into_iter()
        .map(|(name, ms)| Region {
            name: name.into(),
            one_way_delay: Duration::from_millis(ms),
            rate_bps: None,
        })
        .collect()
}

#[test]
fn regions_read_back_their_delays() {
    require_caps!(NetAdmin, SysAdmin);
    let base = tempfile::tempdir().unwrap();
    let mut s = spec(base.path(), 3);
    s.regions = oslo_and_frankfurt();
    let lab = LabGuard(lab::up(&s).unwrap());
    let names: Vec<&str> = lab.state.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["oslo-1", "oslo-2", "frankfurt-1"]);
    let _r1 = responder_in(&lab.state.nodes[1].pod_netns);
    let _r2 = responder_in(&lab.state.nodes[2].pod_netns);

    // Load on the machine is what stretched the delays (the waits for a CPU
    // of the measuring thread, the responder and the delay lines).
    let hog = CpuHog::start();
    let within = rtt_from(&lab, 0, 1, 200);
    let base_ns = within.metrics["oslo-1->oslo-2/native/udp"].p50 as f64;
    assert!(
        base_ns < 2_000_000.0,
        "no added delay inside a region: {base_ns} ns"
    );

    let across = rtt_from(&lab, 0, 2, 60);
    drop(hog);
    let expected = 26_000_000.0; // 2 x (1 ms + 12 ms)
    for path in ["native", "overlay"] {
        let p50 = across.metrics[&format!("oslo-1->frankfurt-1/{path}/udp")].p50 as f64;
        eprintln!("{path}: cross-region p50 {p50} ns, in-region base {base_ns} ns");
        assert!(
            (p50 - base_ns - expected).abs() <= expected * 0.05,
            "{path}: {p50} ns is not 26 ms +- 5 % plus the base {base_ns} ns"
        );
    }
}

/// Ups a lab with agents, runs the plan it writes with the rtt count line
/// replaced by `rtt` (and without mtu unless `mtu`), and returns run.json.
fn run_lab_plan(nodes: usize, rtt: &str, mtu: bool) -> serde_json::Value {
    let base = tempfile::tempdir().unwrap();
    let mut s = spec(base.path(), nodes);
    s.agents = true;
    let lab = LabGuard(lab::up(&s).unwrap());
    let plan = lab.state.plan.clone().expect("a plan with agents");
    let written = std::fs::read_to_string(&plan).unwrap();
    let count_line = written
        .lines()
        .find(|l| l.starts_with("count = "))
        .expect("the lab's plan sets an rtt count")
        .to_string();
    let mut text = written.replace(&count_line, rtt);
    if !mtu {
        text = text.replace("\n[probes.mtu]\n", "\n");
    }
    std::fs::write(&plan, text).unwrap();
    let out = base.path().join("runs");
    let run = common::run(&[
        "run",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    contract::assert_run_json(&common::only_bundle(&out).join("run.json"))
}

#[test]
fn run_works_on_the_plan_the_lab_writes() {
    require_caps!(NetAdmin, SysAdmin);
    // A smaller rtt phase than the written plan's, same agents and paths.
    let text = run_lab_plan(2, "count = 200", true).to_string();
    for key in [
        "node-1->node-2/overlay/udp",
        "node-2->node-1/native/tcp_rr",
        "node-1->node-2/overlay/tcp_connect",
        "overlay_overhead_us",
        "overlay_overhead_matched",
        "mtu.blackhole",
    ] {
        assert!(text.contains(key), "run.json lacks {key}");
    }
}

#[test]
fn peers_limits_each_node_to_its_rendezvous_choice() {
    require_caps!(NetAdmin, SysAdmin);
    let v = run_lab_plan(3, "count = 50\npeers = 1\nkinds = [\"udp\"]", false);
    for node in v["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let rtt = node["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == "rtt")
            .unwrap_or_else(|| panic!("{name} has no rtt result"));
        let peers: std::collections::BTreeSet<&str> = rtt["metrics"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|k| k.split_once("->")?.1.split('/').next())
            .collect();
        assert_eq!(peers.len(), 1, "{name} measured {peers:?}: {}", v["plan"]);
    }
}

/// One source's UDP and TCP request/response on a WAN path, the same
/// parameters but `pipeline`.
fn wan_rtt(lab: &lab::Lab, pipeline: u32, count: u32) -> ProbeResult {
    let params = infraqual_probes::rtt::Params {
        targets: targets(lab, 1),
        count,
        kinds: vec![Kind::Udp, Kind::TcpRr],
        pipeline,
        ..Default::default()
    };
    let node = lab.state.nodes[0].name.clone();
    let result = in_netns(&lab.state.nodes[0].pod_netns, move || {
        let ctx = ProbeContext::new(&node, infraqual_probes::Profile::default());
        infraqual_probes::rtt::run(&params, &ctx).unwrap()
    });
    contract::assert_probe_result(&serde_json::to_value(&result).unwrap());
    result
}

#[test]
fn pipelined_and_one_in_flight_agree_on_a_wan_path() {
    require_caps!(NetAdmin, SysAdmin);
    let base = tempfile::tempdir().unwrap();
    let mut s = spec(base.path(), 2);
    s.regions = oslo_and_frankfurt();
    let lab = LabGuard(lab::up(&s).unwrap());
    let _r = responder_in(&lab.state.nodes[1].pod_netns);
    // The two modes take turns, as rtt's own rounds do, so that a spell of
    // load on a shared machine falls on both rather than on whichever ran
    // second (CI once read 31.5 ms with lanes against 26.7 ms one in
    // flight, run one after the other; here both read 26.4 ms).
    const TURNS: u32 = 4;
    const COUNT: u32 = 50;
    let (mut ones, mut laned) = (Vec::new(), Vec::new());
    for _ in 0..TURNS {
        ones.push(wan_rtt(&lab, 1, COUNT));
        laned.push(wan_rtt(&lab, 8, COUNT));
    }
    for (a, b) in ones.iter().zip(&laned) {
        assert!(a.facts.get("pipelined").is_none(), "{:?}", a.facts);
        for kind in ["udp", "tcp_rr"] {
            assert_eq!(
                b.facts["pipelined"]["oslo-1->frankfurt-1"][kind]["lanes"], 8,
                "{kind}"
            );
            let key = format!("oslo-1->frankfurt-1/native/{kind}");
            assert_eq!(
                b.metrics[&key].count,
                u64::from(COUNT),
                "{key}: no back-filling"
            );
            eprintln!(
                "{key} this turn: one in flight p50 {} ns, 8 lanes p50 {} ns",
                a.metrics[&key].p50, b.metrics[&key].p50
            );
        }
        let loss = &b.facts["loss"]["oslo-1->frankfurt-1/native"];
        assert_eq!(loss["sent"], COUNT, "{loss}");
    }
    let rtt = infraqual_probes::rtt::NAME.descriptor();
    let profile = infraqual_probes::Profile::default();
    let one = rtt.merge_rounds(ones, &profile).unwrap();
    let lanes = rtt.merge_rounds(laned, &profile).unwrap();
    for kind in ["udp", "tcp_rr"] {
        for path in ["native", "overlay"] {
            let key = format!("oslo-1->frankfurt-1/{path}/{kind}");
            let (a, b) = (one.metrics[&key].p50 as f64, lanes.metrics[&key].p50 as f64);
            eprintln!("{key}: one in flight p50 {a} ns, 8 lanes p50 {b} ns ({TURNS} turns each)");
            assert_eq!(lanes.metrics[&key].count, u64::from(TURNS * COUNT), "{key}");
            // UDP replies are timed by the kernel (see docs/measurement.md);
            // TCP's are timed by a thread, whose wait for a CPU on a loaded
            // test machine is not the path's, so only UDP is held to 5 %.
            if kind == "udp" {
                assert!((b - a).abs() <= a * 0.05, "{key}: {b} ns vs {a} ns");
            }
        }
    }
}
