//! The command line (docs/architecture.md): parse, dispatch, map to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::exit::{report_error, Outcome};
use crate::probe_args::ProbeCommand;

#[derive(Parser, Debug)]
#[command(
    name = "infraqual",
    version,
    about = "Qualify infrastructure before trusting it with Kubernetes: CPU steal, etcd fsync \
             latency, overlay RTT and MTU, kube-proxy Service scaling",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the available probes on this machine, write a run bundle and print the verdicts.
    Qualify(commands::qualify::QualifyArgs),
    /// Run one probe on this machine.
    Probe {
        #[command(subcommand)]
        probe: ProbeCommand,
    },
    /// Re-render a run bundle's CSV, plots and report.html from its run.json.
    Report(commands::report::ReportArgs),
    /// Run a plan: drive the agents it names and write one run bundle.
    Run(crate::coordinator::RunArgs),
    /// Serve this machine's probes to a coordinator (HTTP/1.1 JSON API, bearer token, optional TLS).
    Agent(Box<crate::agent::AgentArgs>),
    /// A local emulated cluster in network namespaces: up, down, status.
    Lab(commands::lab::LabArgs),
    /// Compare two run bundles (or a run against a saved baseline): verdicts with confidence.
    Compare(commands::compare::CompareArgs),
    /// Predict etcd's put commit latency per placement and leader from a run's fsync and rtt results.
    Etcd(commands::etcd::EtcdArgs),
    /// Light, paced probes for hours: an HdrHistogram interval log, then a bundle judged per window.
    Soak(crate::soak::SoakArgs),
}

pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let outcome = match cli.command {
        Command::Qualify(args) => commands::qualify::run(&args),
        Command::Probe { probe } => commands::probe::run(&probe),
        Command::Report(args) => commands::report::run(&args),
        Command::Agent(args) => crate::agent::run(&args),
        Command::Lab(args) => commands::lab::run(&args),
        Command::Run(args) => crate::coordinator::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Etcd(args) => commands::etcd::run(&args),
        Command::Soak(args) => crate::soak::run(&args),
    };
    match outcome {
        Ok(outcome) => outcome.into(),
        Err(err) => report_error(&err),
    }
}

/// clap's help and version go to stdout with exit 0; a usage error becomes
/// one line on stderr with exit 2.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            Outcome::Incomplete.into()
        }
        _ => {
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("infraqual: error: {first} (see --help)");
            Outcome::Incomplete.into()
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFRAQUAL_LOG")
        // The agent's access and audit lines are on by default.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,access=info,audit=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
