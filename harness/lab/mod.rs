//! `infraqual lab`: an emulated cluster in network namespaces on this
//! machine (docs/architecture.md): underlay, VXLAN overlay, native routes,
//! regions behind delay lines, faults, an agent per node and a ready plan.

pub mod delay;
mod plan;
mod procs;
pub mod state;
pub mod topology;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use infraqual_probes::system::netns;

pub use state::{LabState, NodeState, DEFAULT_BASE};
use topology::Layout;
pub use topology::{Fault, Region};

/// The echo port agents serve in their pod namespace.
pub const ECHO_PORT: u16 = 7071;

#[derive(Clone, Debug)]
pub struct LabSpec {
    pub nodes: usize,
    pub regions: Vec<Region>,
    pub fault: Option<Fault>,
    /// Labs' state directories live under here.
    pub base: PathBuf,
    /// Start an agent per node (needs `infraqual agent`); without, the
    /// network alone.
    pub agents: bool,
    /// The infraqual binary for agents and delay lines.
    pub exe: PathBuf,
    pub echo_port: u16,
}

impl LabSpec {
    pub fn new(nodes: usize) -> Result<LabSpec> {
        Ok(LabSpec {
            nodes,
            regions: Vec::new(),
            fault: None,
            base: PathBuf::from(DEFAULT_BASE),
            agents: true,
            exe: procs::default_exe()?,
            echo_port: ECHO_PORT,
        })
    }
}

/// A lab that is up: its state and where the state lives.
#[derive(Debug)]
pub struct Lab {
    pub dir: PathBuf,
    pub state: LabState,
}

/// Builds the lab; on any failure removes what was made and returns the error.
pub fn up(spec: &LabSpec) -> Result<Lab> {
    let id = state::new_id()?;
    let layout = Layout::new(&id, spec.nodes, &spec.regions, spec.fault)?;
    let dir = spec.base.join(&id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut st = LabState {
        id: id.clone(),
        created_at: infraqual_probes::timestamp::now_rfc3339(),
        namespaces: layout.namespaces(),
        fault: spec.fault.map(|f| f.as_str().to_string()),
        regions: layout
            .regions
            .iter()
            .map(|r| state::RegionState {
                name: r.name.clone(),
                one_way_delay_us: r.one_way_delay.as_micros() as u64,
                rate_bps: r.rate_bps,
            })
            .collect(),
        nodes: layout
            .nodes
            .iter()
            .map(|n| NodeState {
                name: n.name.clone(),
                region: layout.regions[n.region].name.clone(),
                node_netns: n.node_ns.clone(),
                pod_netns: n.pod_ns.clone(),
                underlay: n.underlay().to_string(),
                native: n.native().to_string(),
                overlay: n.overlay().to_string(),
                agent_url: None,
                token_file: None,
            })
            .collect(),
        ..LabState::default()
    };
    // Recorded before anything exists: a crash from here on is cleanable.
    st.save(&dir)?;
    match build(spec, &layout, &dir, &mut st) {
        Ok(()) => Ok(Lab { dir, state: st }),
        Err(e) => {
            let _ = st.save(&dir);
            if let Err(cleanup) = down_dir(&dir) {
                return Err(e.context(format!("and cleaning up failed: {cleanup:#}")));
            }
            Err(e)
        }
    }
}

fn build(spec: &LabSpec, layout: &Layout, dir: &Path, st: &mut LabState) -> Result<()> {
    topology::build(layout)?;
    for (k, region_ns, hub_ns) in layout.delay_lines() {
        let ready = dir.join(format!("delay-{}.ready", k + 1));
        let log = dir.join(format!("delay-{}.log", k + 1));
        let delay = layout.regions[k].one_way_delay;
        let mut args: Vec<String> = vec![
            "lab".into(),
            "delay-line".into(),
            "--a-netns".into(),
            region_ns,
            "--a-dev".into(),
            topology::REGION_WAN_DEV.into(),
            "--b-netns".into(),
            hub_ns,
            "--b-dev".into(),
            topology::hub_dev(k),
            "--delay".into(),
            format!("{}us", delay.as_micros()),
            "--ready-file".into(),
            ready.display().to_string(),
        ];
        if let Some(rate) = layout.regions[k].rate_bps {
            args.extend(["--rate-bps".into(), rate.to_string()]);
        }
        let pid = procs::spawn(&spec.exe, &args, &log)?;
        st.processes.push(state::ProcessState {
            role: format!("delay-line {}", layout.regions[k].name),
            pid,
        });
        st.save(dir)?;
        procs::wait_ready(&ready, pid, &log, Duration::from_secs(10))?;
    }
    if spec.agents {
        start_agents(spec, dir, st)?;
    }
    if spec.agents {
        let plan_path = dir.join("plan.toml");
        infraqual_reports::atomic::write(&plan_path, plan::render(st).as_bytes())
            .with_context(|| format!("writing {}", plan_path.display()))?;
        st.plan = Some(plan_path);
    }
    st.save(dir)
}

fn start_agents(spec: &LabSpec, dir: &Path, st: &mut LabState) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut waiting = Vec::new();
    for i in 0..st.nodes.len() {
        let name = st.nodes[i].name.clone();
        let token_file = dir.join(format!("{name}.token"));
        let token = crate::agent::generate_token()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&token_file)
            .with_context(|| format!("creating {}", token_file.display()))?;
        std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())?;
        let ready = dir.join(format!("{name}.addr"));
        let log = dir.join(format!("{name}.agent.log"));
        let args: Vec<String> = vec![
            "agent".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--ready-file".into(),
            ready.display().to_string(),
            "--token-file".into(),
            token_file.display().to_string(),
            "--netns".into(),
            st.nodes[i].pod_netns.clone(),
            // Inside the pod's own namespace: every address there is the lab's.
            "--echo-listen".into(),
            format!("0.0.0.0:{}", spec.echo_port),
            "--node".into(),
            name.clone(),
        ];
        let pid = procs::spawn(&spec.exe, &args, &log)?;
        st.processes.push(state::ProcessState {
            role: format!("agent {name}"),
            pid,
        });
        st.nodes[i].token_file = Some(token_file);
        st.save(dir)?;
        waiting.push((i, ready, pid, log));
    }
    for (i, ready, pid, log) in waiting {
        let addr = procs::wait_ready(&ready, pid, &log, Duration::from_secs(20))
            .with_context(|| format!("agent {}", st.nodes[i].name))?;
        st.nodes[i].agent_url = Some(format!("http://{addr}"));
    }
    st.save(dir)
}

/// What `down` removed, and what it could not.
#[derive(Debug, Default)]
pub struct DownReport {
    pub stopped: usize,
    pub namespaces: usize,
    pub problems: Vec<String>,
}

/// Removes a lab by its state directory: processes by verified pid, then
/// the namespaces (with every device, address and route in them), then the
/// state. Safe to repeat.
pub fn down_dir(dir: &Path) -> Result<DownReport> {
    let st = LabState::load(dir)?;
    let mut report = DownReport::default();
    for p in &st.processes {
        if procs::stop(p.pid, &st.id, Duration::from_secs(5)) {
            report.stopped += 1;
        } else {
            report
                .problems
                .push(format!("{} (pid {}) did not exit", p.role, p.pid));
        }
    }
    for ns in st.namespaces.iter().rev() {
        // Only this lab's namespaces: the id is in every name.
        if !netns::belongs_to(ns, &st.id) {
            report
                .problems
                .push(format!("skipped foreign namespace name {ns}"));
            continue;
        }
        match netns::delete(ns) {
            Ok(true) => report.namespaces += 1,
            Ok(false) => {}
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    if report.problems.is_empty() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(report)
}

/// One line per lab for `lab status`.
pub fn describe(dir: &Path) -> Result<String> {
    let st = LabState::load(dir)?;
    let present = st.namespaces.iter().filter(|n| netns::exists(n)).count();
    let running = st.processes.iter().filter(|p| procs::alive(p.pid)).count();
    let regions: Vec<String> = st
        .regions
        .iter()
        .map(|r| match r.rate_bps {
            Some(bps) => format!(
                "{}:{}us:{}",
                r.name,
                r.one_way_delay_us,
                delay::rate_text(bps)
            ),
            None => format!("{}:{}us", r.name, r.one_way_delay_us),
        })
        .collect();
    let mut out = format!(
        "{}  created {}  nodes {}  regions {}  fault {}  namespaces {}/{}  processes {}/{}\n",
        st.id,
        st.created_at,
        st.nodes.len(),
        regions.join(","),
        st.fault.as_deref().unwrap_or("none"),
        present,
        st.namespaces.len(),
        running,
        st.processes.len()
    );
    for n in &st.nodes {
        out.push_str(&format!(
            "  {:<14} region {:<10} pod netns {:<14} native {:<15} overlay {:<15} agent {}\n",
            n.name,
            n.region,
            n.pod_netns,
            n.native,
            n.overlay,
            n.agent_url.as_deref().unwrap_or("-")
        ));
    }
    if let Some(plan) = &st.plan {
        out.push_str(&format!("  plan {}\n", plan.display()));
    }
    Ok(out)
}

/// Tears the lab down when dropped (tests, and `lab up` failures).
pub struct LabGuard(pub Lab);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = down_dir(&self.0.dir) {
            eprintln!("lab {}: cleanup failed: {e:#}", self.0.state.id);
        }
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}
