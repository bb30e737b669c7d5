//! `[discover]` on the lab (root: network namespaces): per node a pod-network
//! and a hostNetwork-style agent inside the node's pod namespace, headless
//! names served by dnsmasq on a lab address, the coordinator inside a pod
//! namespace. The bundle must hold the same nodes, paths and rtt metrics as
//! the lab's static plan, and the host's firewall must be untouched. Bad
//! `[discover]` names exit 2 naming key, file, line and column.

mod common;
mod contract;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infraqual::lab::{self, LabGuard, LabSpec};
use infraqual_probes::require_caps;
use serde_json::Value;

const LAB_ECHO_PORT: u16 = 7071;
const POD_API: u16 = 7170;
const HOST_API: u16 = 7171;
const POD_ECHO: u16 = 7172;
const HOST_ECHO: u16 = 7173;
const DNS_DOMAIN: &str = "iq.test";

/// Processes this test started; killed when it ends, also on a panic. A
/// killed test runner takes them along (PR_SET_PDEATHSIG).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn in_netns(ns: &str, program: &Path, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches only this process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

fn wait_for_file(path: &Path, log: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared; log:\n{}",
            path.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn firewall() -> (String, String) {
    let iptables = Command::new("iptables-save").output().unwrap();
    let nft = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    // Comments carry timestamps, chain headers packet counters.
    let iptables = String::from_utf8_lossy(&iptables.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    (iptables, String::from_utf8_lossy(&nft.stdout).into_owned())
}

/// Node names, and per node the probes and the rtt metric names.
fn shape(run_json: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for node in run_json["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        out.insert(format!("node {name}"));
        for r in node["results"].as_array().unwrap() {
            let probe = r["probe"].as_str().unwrap();
            out.insert(format!("{name} {probe}"));
            if probe == "rtt" {
                for key in r["metrics"].as_object().unwrap().keys() {
                    out.insert(format!("{name} rtt {key}"));
                }
            }
        }
        assert!(
            node["errors"].as_array().unwrap().is_empty(),
            "{name}: {}",
            node["errors"]
        );
    }
    out
}

/// How the agents run: as processes, or as containers of the agent image
/// with the pod namespace as their network (the container is the pod).
#[derive(Clone, Copy, PartialEq)]
enum Launch {
    Process,
    Podman,
}

const IMAGE: &str = concat!("localhost/infraqual-agent:", env!("CARGO_PKG_VERSION"));
/// Containers are named after their lab, so a crashed run's are found.
const CONTAINER_PREFIX: &str = "iqdisc-";

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env(
        "CONTAINERS_CONF",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/podman/containers.conf"),
    );
    cmd
}

/// Removes containers of labs that no longer exist (a crashed run's).
fn sweep_containers() {
    let out = podman()
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = name.strip_prefix(CONTAINER_PREFIX) else {
            continue;
        };
        let lab_id = rest.split('-').next().unwrap_or_default();
        if !Path::new(&format!("/run/netns/iq-{lab_id}-p1")).exists() {
            let _ = podman().args(["rm", "-f", "-t", "0", name]).output();
        }
    }
}

/// Containers this test started, removed when it ends.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = podman().args(["rm", "-f", "-t", "0", name]).output();
        }
    }
}

/// Fields drop in order: the processes go before their namespaces.
struct DiscoveryLab {
    _processes: Children,
    _containers: Containers,
    lab: LabGuard,
    dir: tempfile::TempDir,
    dns: String,
}

impl DiscoveryLab {
    fn start(launch: Launch) -> DiscoveryLab {
        let dir = tempfile::tempdir().unwrap();
        if launch == Launch::Podman {
            sweep_containers();
        }
        let spec = LabSpec {
            nodes: 2,
            regions: Vec::new(),
            fault: None,
            base: dir.path().join("labs"),
            agents: true,
            exe: PathBuf::from(env!("CARGO_BIN_EXE_infraqual")),
            echo_port: LAB_ECHO_PORT,
        };
        let lab = LabGuard(lab::up(&spec).unwrap());
        let exe = Path::new(env!("CARGO_BIN_EXE_infraqual"));
        let token = dir.path().join("agents.token");
        std::fs::write(&token, "discovery-test-token-0123456789abcdef\n").unwrap();
        // What containers see as /share: the token and their ready files;
        // the image runs as nobody.
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::fs::set_permissions(&share, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::fs::copy(&token, share.join("agents.token")).unwrap();
        // Agents refuse a token others can read: the coordinator's is
        // root's, the containers' belongs to nobody (65534), both 0600.
        for file in [token.clone(), share.join("agents.token")] {
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        std::os::unix::fs::chown(share.join("agents.token"), Some(65534), Some(65534)).unwrap();
        let mut children = Children(Vec::new());
        let mut containers = Containers(Vec::new());
        let mut hosts = String::new();
        for node in &lab.0.state.nodes {
            // The pod's agent on the overlay address, the "hostNetwork"
            // agent on the native one; both in the node's pod namespace.
            for (role, api, echo, pod_ip) in [
                ("pod", POD_API, POD_ECHO, &node.overlay),
                ("host", HOST_API, HOST_ECHO, &node.native),
            ] {
                let ready = share.join(format!("{}-{role}.addr", node.name));
                let log = dir.path().join(format!("{}-{role}.log", node.name));
                let (token_arg, ready_arg) = match launch {
                    Launch::Process => (token.display().to_string(), ready.display().to_string()),
                    Launch::Podman => (
                        "/share/agents.token".to_string(),
                        format!("/share/{}-{role}.addr", node.name),
                    ),
                };
                let args: Vec<String> = [
                    "agent",
                    "--listen",
                    &format!("0.0.0.0:{api}"),
                    // Lab addresses only, as in the cluster behind its
                    // NetworkPolicy (deploy/kubernetes does the same).
                    "--insecure-plaintext",
                    "--token-file",
                    &token_arg,
                    "--echo-port",
                    &echo.to_string(),
                    "--node",
                    &node.name,
                    "--pod-ip",
                    pod_ip,
                    "--host-ip",
                    &node.native,
                    "--label",
                    &format!("network={role}"),
                    "--ready-file",
                    &ready_arg,
                ]
                .into_iter()
                .map(String::from)
                .collect();
                match launch {
                    Launch::Process => children.0.push(in_netns(&node.pod_netns, exe, &args, &log)),
                    Launch::Podman => {
                        let name =
                            format!("{CONTAINER_PREFIX}{}-{}-{role}", lab.0.state.id, node.name);
                        containers.0.push(name.clone());
                        let out = podman()
                            .args(["run", "-d", "--rm", "--name", &name])
                            .arg(format!("--network=ns:/run/netns/{}", node.pod_netns))
                            .arg(format!("--volume={}:/share", share.display()))
                            .arg(IMAGE)
                            .args(&args)
                            .output()
                            .unwrap();
                        assert!(
                            out.status.success(),
                            "podman run: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        let logs = podman().args(["logs", &name]).output().unwrap();
                        std::fs::write(&log, [logs.stdout, logs.stderr].concat()).unwrap();
                    }
                }
                wait_for_file(&ready, &log);
            }
            hosts.push_str(&format!("{} agent.{DNS_DOMAIN}\n", node.overlay));
            hosts.push_str(&format!("{} agent-host.{DNS_DOMAIN}\n", node.native));
        }
        let hosts_file = dir.path().join("hosts");
        std::fs::write(&hosts_file, hosts).unwrap();
        let first = &lab.0.state.nodes[0];
        let dns = first.overlay.clone();
        let log = dir.path().join("dnsmasq.log");
        let args: Vec<String> = vec![
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            // Authoritative for the test's domain: unknown names get NXDOMAIN.
            format!("--local=/{DNS_DOMAIN}/"),
            "--bind-interfaces".into(),
            format!("--listen-address={dns}"),
            format!("--addn-hosts={}", hosts_file.display()),
            // A name with only an AAAA record: it exists, but has no A.
            format!("--host-record=v6only.{DNS_DOMAIN},2001:db8::1"),
            format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
            "--user=root".into(),
            "--log-facility=-".into(),
        ];
        children.0.push(in_netns(
            &first.pod_netns,
            Path::new("/usr/sbin/dnsmasq"),
            &args,
            &log,
        ));
        wait_for_file(&dir.path().join("dnsmasq.pid"), &log);
        DiscoveryLab {
            _processes: children,
            _containers: containers,
            lab,
            dir,
            dns,
        }
    }

    fn plan(&self, services: &str) -> PathBuf {
        let text = format!(
            "name = \"discovered\"\n\n[discover]\ntoken_file = \"agents.token\"\ndns_server = \"{dns}\"\n{services}\n\
             [probes.inventory]\n\n[probes.rtt]\npaths = [\"native\", \"overlay\"]\ncount = 200\n",
            dns = self.dns
        );
        let path = self.dir.path().join("discover.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `infraqual run` inside the first pod namespace (lab addresses are
    /// reachable only there).
    fn run_inside(&self, plan: &Path, out: &Path) -> common::Run {
        let ns = &self.lab.0.state.nodes[0].pod_netns;
        let output = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_infraqual"), "run"])
            .arg(plan)
            .arg("--out")
            .arg(out)
            .env_remove("INFRAQUAL_LOG")
            .output()
            .unwrap();
        common::Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn service(name: &str, port: u16, path: &str) -> String {
    format!("\n[[discover.services]]\nname = \"{name}\"\nport = {port}\npath = \"{path}\"\n")
}

#[test]
fn a_discover_plan_finds_what_the_static_plan_lists() {
    require_caps!(NetAdmin, SysAdmin);
    discover_like_the_static_plan(Launch::Process);
}

/// The agent image as podman containers in the pod namespaces. Long: it
/// builds the images first (scripts/build-image, a release build);
/// `cargo test --test discovery_lab -- --ignored`.
#[test]
#[ignore]
fn agent_image_containers_are_discovered_like_the_static_plan() {
    require_caps!(NetAdmin, SysAdmin);
    let images = tempfile::tempdir().unwrap();
    let built = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image"))
        .arg(images.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/build-image:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&built.stdout));
    discover_like_the_static_plan(Launch::Podman);
}

fn discover_like_the_static_plan(launch: Launch) {
    let before = firewall();
    let lab = DiscoveryLab::start(launch);

    let static_plan = lab.lab.0.state.plan.clone().unwrap();
    let text = std::fs::read_to_string(&static_plan)
        .unwrap()
        .replace("count = 1000", "count = 200")
        .replace("\n[probes.mtu]\n", "\n");
    std::fs::write(&static_plan, text).unwrap();
    let static_out = lab.dir.path().join("static");
    let run = common::run(&[
        "run",
        static_plan.to_str().unwrap(),
        "--out",
        static_out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let static_json = contract::assert_run_json(&common::only_bundle(&static_out).join("run.json"));

    let plan = lab.plan(&format!(
        "{}{}",
        service(&format!("agent.{DNS_DOMAIN}"), POD_API, "overlay"),
        service(&format!("agent-host.{DNS_DOMAIN}"), HOST_API, "native"),
    ));
    let out = lab.dir.path().join("discovered");
    let run = lab.run_inside(&plan, &out);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let bundle = common::only_bundle(&out);
    let found = contract::assert_run_json(&bundle.join("run.json"));

    assert_eq!(shape(&found), shape(&static_json));
    // Each node's jobs ran on its "hostNetwork" agent, labels came along.
    for node in found["nodes"].as_array().unwrap() {
        assert_eq!(node["labels"]["network"], "host", "{}", node["labels"]);
    }
    let discovered_agents = &found["plan"]["agents"];
    for agent in discovered_agents.as_array().unwrap() {
        let url = agent["url"].as_str().unwrap();
        assert!(url.ends_with(&format!(":{HOST_API}/")), "{url}");
        assert!(agent["addresses"]["overlay"]
            .as_str()
            .unwrap()
            .ends_with(".1"));
        assert!(agent["addresses"]["native"]
            .as_str()
            .unwrap()
            .ends_with(".129"));
    }
    drop(lab);
    assert_eq!(
        firewall(),
        before,
        "the host's iptables or nft ruleset changed"
    );
}

#[test]
fn bad_discover_names_exit_2_naming_key_file_line_and_column() {
    require_caps!(NetAdmin, SysAdmin);
    let lab = DiscoveryLab::start(Launch::Process);
    let out = lab.dir.path().join("runs");
    for (name, expected) in [
        ("missing", "does not resolve"),
        ("v6only", "resolves to no address"),
    ] {
        let plan = lab.plan(&service(
            &format!("{name}.{DNS_DOMAIN}"),
            POD_API,
            "overlay",
        ));
        let run = lab.run_inside(&plan, &out);
        assert_eq!(run.code, 2, "{name}: {}\n{}", run.stdout, run.stderr);
        let line = run.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{line}");
        // The `name` value of the service: line 8, column 8.
        let at = format!("{}:8:8: name", plan.display());
        assert!(line.contains(&at), "{name}: {line} lacks {at}");
        assert!(line.contains(expected), "{name}: {line}");
    }
    assert!(!out.exists(), "a bundle was written for a plan that failed");
}

/// The run.json of the one bundle under `out`, once it exists.
fn read_run_json(out: &Path) -> Option<Value> {
    let dir = std::fs::read_dir(out).ok()?.next()?.ok()?.path();
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn agents_that_appear_or_vanish_during_a_run_are_reported() {
    require_caps!(NetAdmin, SysAdmin);
    let lab = DiscoveryLab::start(Launch::Process);
    let plan = lab.plan(&format!(
        "{}{}",
        service(&format!("agent.{DNS_DOMAIN}"), POD_API, "overlay"),
        service(&format!("agent-host.{DNS_DOMAIN}"), HOST_API, "native"),
    ));
    // A steal phase between inventory and rtt: DNS changes while it runs.
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "[probes.rtt]",
        "[probes.steal]\nduration = \"5s\"\n\n[probes.rtt]",
    );
    std::fs::write(&plan, text).unwrap();
    let out = lab.dir.path().join("runs");
    let ns = lab.lab.0.state.nodes[0].pod_netns.clone();
    let mut run = Children(vec![Command::new("ip")
        .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_infraqual"), "run"])
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);

    // Once both inventories are in, the look before steal has been taken.
    let start = Instant::now();
    loop {
        let inventories = read_run_json(&out).map_or(0, |v| {
            v["nodes"].as_array().map_or(0, |n| {
                n.iter().filter(|n| !n["inventory"].is_null()).count()
            })
        });
        if inventories == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no inventories");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    // node-2's host agent leaves agent-host; a new address joins agent.
    let node2 = &lab.lab.0.state.nodes[1];
    let hosts = lab.dir.path().join("hosts");
    let text = std::fs::read_to_string(&hosts)
        .unwrap()
        .replace(&format!("{} agent-host.{DNS_DOMAIN}\n", node2.native), "")
        + &format!("198.19.99.1 agent.{DNS_DOMAIN}\n");
    std::fs::write(&hosts, text).unwrap();
    let pid: i32 = std::fs::read_to_string(lab.dir.path().join("dnsmasq.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill with a pid read from the dnsmasq this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);

    let status = run.0[0].wait().unwrap();
    assert_eq!(status.code(), Some(2), "an incomplete run");
    let v = read_run_json(&out).unwrap();
    let errors = |node: &str| -> String {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .map(|n| n["errors"].to_string())
            .unwrap_or_default()
    };
    let vanished = errors(&node2.name);
    assert!(
        vanished.contains(&format!("vanished from `agent-host.{DNS_DOMAIN}`")),
        "{vanished}"
    );
    let appeared = errors("198.19.99.1");
    assert!(
        appeared.contains(&format!("appeared in `agent.{DNS_DOMAIN}`")),
        "{appeared}"
    );
    // The other node was measured until then, and its rtt phase says why
    // it had no peer left.
    let node1 = &lab.lab.0.state.nodes[0].name;
    let results = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| &n["name"] == node1)
        .map(|n| n["results"].to_string())
        .unwrap();
    assert!(results.contains("\"probe\":\"steal\""), "{results}");
    assert!(errors(node1).contains("no targets"), "{}", errors(node1));
}
