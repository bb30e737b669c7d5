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
            let line = one_line(&err.render().to_string());
            eprintln!("infraqual: error: {line} (see --help)");
            Outcome::Incomplete.into()
        }
    }
}

/// clap's message in one line. Some messages end their first line with a
/// colon and list what they mean on the indented lines below ("the
/// following required arguments were not provided:"); that list is the
/// part a user needs, so it joins the line.
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .trim_end();
    if !first.ends_with(':') {
        return first.to_string();
    }
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') || l.starts_with('\t'))
        .map(str::trim)
        .collect();
    format!("{first} {}", listed.join(", "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_required_argument_is_named_on_the_one_line() {
        let Err(err) = Cli::try_parse_from([
            "infraqual",
            "agent",
            "--listen",
            "127.0.0.1:1",
            "--token-file",
            "t",
            "--tls-key",
            "k",
        ]) else {
            panic!("--tls-key needs --tls-cert");
        };
        let line = one_line(&err.render().to_string());
        assert!(line.contains("--tls-cert"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn a_one_line_message_stays_as_it_is() {
        assert_eq!(
            one_line("error: unexpected argument 'x' found\n\nUsage: infraqual\n"),
            "unexpected argument 'x' found"
        );
    }
}
