//! `infraqual lab up | down | status`: the local emulated cluster.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use infraqual_probes::units::HumanDuration;

use crate::exit::Outcome;
use crate::lab::{self, Fault, LabSpec, Region};

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Build a lab: namespaces per node, underlay, VXLAN overlay, native routes, regions, agents, a ready plan.
    Up(UpArgs),
    /// Remove a lab (processes, namespaces, state), also after a crash.
    Down(DownArgs),
    /// List labs and what of them is still there.
    Status(StatusArgs),
    /// Serve UDP and TCP echo (what the rtt and mtu probes measure against) until interrupted.
    Echo(EchoArgs),
    /// (internal) The delay line between a region and the WAN hub.
    #[command(hide = true)]
    DelayLine(lab::delay::DelayLineArgs),
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of nodes (2..=100).
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// A region, its one-way delay to the WAN hub and optionally its WAN
    /// link rate, e.g. oslo:1ms or oslo:1ms:200mbit (repeat for each region;
    /// nodes are split between regions in order).
    #[arg(long = "region", value_name = "NAME:ONE_WAY_DELAY[:RATE]", value_parser = parse_region)]
    pub regions: Vec<Region>,
    /// Inject a fault.
    #[arg(long, value_enum)]
    pub fault: Option<FaultArg>,
    /// Where lab state lives.
    #[arg(long, value_name = "DIR", default_value = lab::DEFAULT_BASE)]
    pub state_dir: PathBuf,
    /// Build the network only, without an agent per node (and without a plan).
    #[arg(long)]
    pub no_agents: bool,
    /// Echo responder port of the agents (in their pod namespaces).
    #[arg(long, default_value_t = lab::ECHO_PORT)]
    pub echo_port: u16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FaultArg {
    /// Pods believe MTU 1500, the overlay carries 1450, ICMP frag-needed is dropped.
    MtuBlackhole,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// The lab to remove (see `lab status`); not needed when there is
    /// exactly one.
    #[arg(long, conflicts_with = "all")]
    pub id: Option<String>,
    /// Remove every lab recorded under --state-dir.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_name = "DIR", default_value = lab::DEFAULT_BASE)]
    pub state_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct EchoArgs {
    /// Address for both UDP and TCP, e.g. 0.0.0.0:7071 (run it inside a
    /// namespace with `ip netns exec`).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long, value_name = "DIR", default_value = lab::DEFAULT_BASE)]
    pub state_dir: PathBuf,
}

fn parse_region(s: &str) -> Result<Region, String> {
    let (name, rest) = s.split_once(':').ok_or_else(|| {
        format!("`{s}`: expected NAME:ONE_WAY_DELAY[:RATE], e.g. oslo:1ms or oslo:1ms:200mbit")
    })?;
    let (delay, rate_bps) = match rest.split_once(':') {
        Some((delay, rate)) => (delay, Some(lab::delay::parse_rate(rate)?)),
        None => (rest, None),
    };
    let ok_name = !name.is_empty()
        && name.len() <= 10
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok_name {
        return Err(format!(
            "`{name}`: region names are 1-10 lowercase letters or digits"
        ));
    }
    let delay: HumanDuration = delay.parse().map_err(|e| format!("`{delay}`: {e}"))?;
    if delay.0 > Duration::from_secs(1) {
        return Err(format!("`{s}`: one-way delay above 1s"));
    }
    Ok(Region {
        name: name.to_string(),
        one_way_delay: delay.0,
        rate_bps,
    })
}

pub fn run(args: &LabArgs) -> Result<Outcome> {
    match &args.command {
        LabCommand::Up(a) => up(a),
        LabCommand::Down(a) => down(a),
        LabCommand::Status(a) => status(a),
        LabCommand::DelayLine(a) => lab::delay::run(a),
        LabCommand::Echo(a) => echo(a),
    }
}

fn up(a: &UpArgs) -> Result<Outcome> {
    let mut names: Vec<&str> = a.regions.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        bail!("--region: a region is named twice");
    }
    let spec = LabSpec {
        nodes: a.nodes,
        regions: a.regions.clone(),
        fault: a.fault.map(|FaultArg::MtuBlackhole| Fault::MtuBlackhole),
        base: a.state_dir.clone(),
        agents: !a.no_agents,
        echo_port: a.echo_port,
        ..LabSpec::new(a.nodes)?
    };
    let lab = lab::up(&spec)?;
    print!("lab {} is up\n{}", lab.state.id, lab::describe(&lab.dir)?);
    if let Some(plan) = &lab.state.plan {
        println!("run it:   infraqual run {}", plan.display());
    }
    println!(
        "remove:   infraqual lab down --id {}{}",
        lab.state.id,
        state_dir_flag(&a.state_dir)
    );
    Ok(Outcome::Pass)
}

fn state_dir_flag(dir: &std::path::Path) -> String {
    if dir == std::path::Path::new(lab::DEFAULT_BASE) {
        String::new()
    } else {
        format!(" --state-dir {}", dir.display())
    }
}

/// The one lab under `base`, so `lab down` needs no --id; with none or
/// several it says what to pass instead.
fn only_lab(base: &std::path::Path) -> Result<Vec<PathBuf>> {
    let dirs = lab::state::list(base);
    let ids: Vec<String> = dirs
        .iter()
        .filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
        .collect();
    match dirs.len() {
        0 => bail!(
            "no lab under {} (see `infraqual lab status`)",
            base.display()
        ),
        1 => Ok(dirs),
        n => bail!(
            "{n} labs under {}: pass --id with one of {}, or --all",
            base.display(),
            ids.join(", ")
        ),
    }
}

fn down(a: &DownArgs) -> Result<Outcome> {
    let dirs: Vec<PathBuf> = match &a.id {
        Some(id) => {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("--id {id}: lab ids are hex digits (see `infraqual lab status`)");
            }
            let dir = a.state_dir.join(id);
            if !dir.join(lab::state::STATE_FILE).is_file() {
                bail!("--id {id}: no such lab under {}", a.state_dir.display());
            }
            vec![dir]
        }
        None if a.all => lab::state::list(&a.state_dir),
        None => only_lab(&a.state_dir)?,
    };
    let mut failed = false;
    for dir in dirs {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match lab::down_dir(&dir) {
            Ok(r) if r.problems.is_empty() => println!(
                "lab {id}: removed ({} namespaces, {} processes)",
                r.namespaces, r.stopped
            ),
            Ok(r) => {
                failed = true;
                eprintln!("lab {id}: left behind: {}", r.problems.join("; "));
            }
            Err(e) => {
                failed = true;
                eprintln!("lab {id}: {e:#}");
            }
        }
    }
    Ok(if failed {
        Outcome::Incomplete
    } else {
        Outcome::Pass
    })
}

fn echo(a: &EchoArgs) -> Result<Outcome> {
    let cancel = crate::signals::cancel_on_signals();
    let responder =
        infraqual_probes::rtt::responder::EchoResponder::start(a.listen, cancel.clone())?;
    println!(
        "echo responder on {} (UDP and TCP); Ctrl-C stops",
        responder.local_addr()
    );
    while !cancel.is_cancelled() {
        std::thread::sleep(Duration::from_millis(100));
    }
    responder.stop();
    Ok(Outcome::Pass)
}

fn status(a: &StatusArgs) -> Result<Outcome> {
    let dirs = lab::state::list(&a.state_dir);
    if dirs.is_empty() {
        println!("no labs under {}", a.state_dir.display());
    }
    for dir in dirs {
        match lab::describe(&dir) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("{}: {e:#}", dir.display()),
        }
    }
    Ok(Outcome::Pass)
}
