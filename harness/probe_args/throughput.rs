use anyhow::Result;
use clap::Args;
use infraqual_probes::throughput::{Params, Target};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::target::parse_target;
use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct ThroughputArgs {
    /// A node's echo port (an agent's, or `infraqual lab echo`), where the
    /// throughput sink answers, on a named path; repeat for more targets and
    /// paths (they take turns slice by slice).
    #[arg(long = "target", value_name = "NAME=ADDR:PORT[@PATH]", required = true, value_parser = parse_target)]
    pub targets: Vec<Target>,
    /// Parallel TCP connections, one measurement per count.
    #[arg(long, value_delimiter = ',', default_values_t = Params::default().streams)]
    pub streams: Vec<u32>,
    /// TCP time per target and stream count.
    #[arg(long, default_value_t = Params::default().duration)]
    pub duration: HumanDuration,
    /// Targets and paths take turns for this long each (whole seconds).
    #[arg(long, default_value_t = Params::default().slice)]
    pub slice: HumanDuration,
    /// Longest wait for a connection.
    #[arg(long, default_value_t = Params::default().connect_timeout)]
    pub connect_timeout: HumanDuration,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ProbeArgs for ThroughputArgs {
    const PROBE: ProbeName = infraqual_probes::throughput::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            targets: self.targets.clone(),
            streams: self.streams.clone(),
            duration: self.duration,
            slice: self.slice,
            connect_timeout: self.connect_timeout,
            ..Params::default()
        };
        Ok(serde_json::to_value(params)?)
    }
}
