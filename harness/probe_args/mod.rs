//! Command-line arguments of `infraqual probe <name>`: one file per probe,
//! each turning its flags into the probe's JSON parameters (the same form a
//! plan or an agent request carries).

pub mod target;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use infraqual_probes::{Probe, ProbeName};
use serde_json::Value;

/// Flags every `probe` subcommand takes.
#[derive(Args, Clone, Debug)]
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
    /// Complete runs, merged into one result that keeps every round (1 ..= 100).
    #[arg(long, value_name = "N", default_value = "1", value_parser = crate::rounds::parse_rounds_flag, allow_hyphen_values = true)]
    pub rounds: u32,
    /// Spread the rounds evenly over DURATION (first at the start, last at
    /// the end, e.g. 5m; 1s ..= 24h; needs --rounds 2 or more).
    #[arg(long, value_name = "DURATION", value_parser = crate::rounds::parse_over_flag, allow_hyphen_values = true)]
    pub over: Option<std::time::Duration>,
}

/// What each probe's argument struct provides.
pub trait ProbeArgs {
    const PROBE: ProbeName;
    fn common(&self) -> &CommonArgs;
    fn params(&self) -> Result<Value>;
}

/// One `infraqual probe <name>` subcommand per probe: its arguments file,
/// its descriptor (whose one-line question is the subcommand's help).
macro_rules! probe_commands {
    ($($variant:ident => $module:ident :: $args:ident for $probe:path),+ $(,)?) => {
        $(pub mod $module;)+

        #[derive(Subcommand, Debug)]
        pub enum ProbeCommand {
            $(
                #[command(about = <$probe as Probe>::ABOUT)]
                $variant($module::$args),
            )+
        }

        impl ProbeCommand {
            /// The probe, its parameters and the common flags.
            pub fn resolve(&self) -> (ProbeName, Result<Value>, &CommonArgs) {
                match self {
                    $(ProbeCommand::$variant(a) => ($module::$args::PROBE, a.params(), a.common()),)+
                }
            }
        }
    };
}

probe_commands! {
    Inventory => inventory::InventoryArgs for infraqual_probes::inventory::Inventory,
    Steal => steal::StealArgs for infraqual_probes::steal::Steal,
    Fsync => fsync::FsyncArgs for infraqual_probes::fsync::Fsync,
    Rtt => rtt::RttArgs for infraqual_probes::rtt::Rtt,
    Mtu => mtu::MtuArgs for infraqual_probes::mtu::Mtu,
    Throughput => throughput::ThroughputArgs for infraqual_probes::throughput::Throughput,
    Services => services::ServicesArgs for infraqual_probes::services::Services,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        probe: super::ProbeCommand,
    }

    #[test]
    fn every_registered_probe_has_one_subcommand_of_its_name() {
        let command = Cli::command();
        let subcommands: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
        let registered: Vec<&str> = infraqual_probes::registry::names_in_order()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(subcommands, registered);
    }
}
