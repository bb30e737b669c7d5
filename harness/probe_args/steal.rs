use anyhow::Result;
use clap::Args;
use infraqual_probes::steal::Params;
use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct StealArgs {
    /// How long to keep the CPUs busy and measure (1s ..= 1h).
    #[arg(long, value_name = "DURATION", default_value_t = Params::default().duration)]
    pub duration: HumanDuration,
    /// CPUs to measure, taskset syntax (0-3,6); default: every CPU this process may use.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Sampling interval of /proc/stat and of the per-second series.
    #[arg(long, value_name = "DURATION", default_value_t = Params::default().interval)]
    pub interval: HumanDuration,
    /// Fixed hiccup threshold (default: max(10us, 8x the loop's smallest step)).
    #[arg(long, value_name = "DURATION")]
    pub threshold: Option<HumanDuration>,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ProbeArgs for StealArgs {
    const PROBE: ProbeName = infraqual_probes::steal::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        Ok(serde_json::to_value(Params {
            duration: self.duration,
            cpus: self.cpus.clone(),
            interval: self.interval,
            threshold: self.threshold,
        })?)
    }
}
