//! Command-line arguments of `infraqual probe <name>`: one file per probe,
//! each turning its flags into the probe's JSON parameters (the same form a
//! plan or an agent request carries).

pub mod fsync;
pub mod inventory;
pub mod mtu;
pub mod rtt;
pub mod services;
pub mod steal;
pub mod target;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use infraqual_probes::ProbeName;
use serde_json::Value;

/// Flags every `probe` subcommand takes.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// Print the ProbeResult as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Threshold profile: a built-in name (etcd) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "etcd")]
    pub profile: String,
    /// Node name recorded in the result.
    #[arg(long, default_value = "local")]
    pub node: String,
}

/// What each probe's argument struct provides.
pub trait ProbeArgs {
    const PROBE: ProbeName;
    fn common(&self) -> &CommonArgs;
    fn params(&self) -> Result<Value>;
}

#[derive(Subcommand, Debug)]
pub enum ProbeCommand {
    /// What this machine really is: CPU, memory, hypervisor, disks, NICs, conntrack, firewall stack.
    Inventory(inventory::InventoryArgs),
    /// Is a noisy neighbour taking my CPU? Steal counter, hiccup detector, run-queue wait.
    Steal(steal::StealArgs),
    /// Can this disk carry etcd's WAL? Sequential writes + fdatasync, judged against etcd's 10 ms p99.
    Fsync(fsync::FsyncArgs),
    /// What does the overlay cost? UDP ping-pong, TCP request/response and connect to echo responders.
    Rtt(rtt::RttArgs),
    /// Will large packets vanish? DF-set UDP size sweep per path; finds MTU black holes.
    Mtu(mtu::MtuArgs),
    /// What do 10 -> 10,000 Services cost per packet? kube-proxy layouts in a private namespace.
    Services(services::ServicesArgs),
}

impl ProbeCommand {
    /// The probe, its parameters and the common flags.
    pub fn resolve(&self) -> (ProbeName, Result<Value>, &CommonArgs) {
        fn parts<A: ProbeArgs>(a: &A) -> (ProbeName, Result<Value>, &CommonArgs) {
            (A::PROBE, a.params(), a.common())
        }
        match self {
            ProbeCommand::Inventory(a) => parts(a),
            ProbeCommand::Steal(a) => parts(a),
            ProbeCommand::Fsync(a) => parts(a),
            ProbeCommand::Rtt(a) => parts(a),
            ProbeCommand::Mtu(a) => parts(a),
            ProbeCommand::Services(a) => parts(a),
        }
    }
}

/// Resolves `--profile`: a built-in name, else a file path.
pub fn load_profile(spec: &str) -> Result<infraqual_probes::Profile> {
    use anyhow::Context;
    if let Some(p) = infraqual_probes::Profile::builtin(spec) {
        return Ok(p);
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        anyhow::bail!("--profile {spec}: not a built-in profile (etcd) nor an existing file");
    }
    infraqual_probes::Profile::load(&path).with_context(|| format!("--profile {spec}"))
}
