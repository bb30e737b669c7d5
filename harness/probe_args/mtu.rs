use anyhow::Result;
use clap::Args;
use infraqual_probes::mtu::Params;
use infraqual_probes::rtt::Target;
use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::target::parse_target;
use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct MtuArgs {
    /// A node's echo responder on a named path; repeat for more.
    #[arg(long = "target", value_name = "NAME=ADDR:PORT[@PATH]", required = true, value_parser = parse_target)]
    pub targets: Vec<Target>,
    /// Tries per size before it counts as not delivered.
    #[arg(long, default_value_t = Params::default().attempts)]
    pub attempts: u32,
    /// Probes confirming the answer.
    #[arg(long, default_value_t = Params::default().repeats)]
    pub repeats: u32,
    /// Wait for each reply.
    #[arg(long, default_value_t = Params::default().timeout)]
    pub timeout: HumanDuration,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ProbeArgs for MtuArgs {
    const PROBE: ProbeName = infraqual_probes::mtu::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            targets: self.targets.clone(),
            attempts: self.attempts,
            repeats: self.repeats,
            timeout: self.timeout,
            ..Params::default()
        };
        Ok(serde_json::to_value(params)?)
    }
}
