use anyhow::Result;
use clap::Args;
use infraqual_probes::services::{Mode, Params};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Proxy modes to measure; a mode this machine cannot run is reported
    /// as skipped with the reason.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        value_enum,
        default_values_t = Params::default().modes.into_iter().map(ModeArg::from)
    )]
    pub modes: Vec<ModeArg>,
    /// Service counts to program (each from empty), up to 30000.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_values_t = Params::default().counts
    )]
    pub counts: Vec<usize>,
    /// Endpoints per service.
    #[arg(long, value_name = "N", default_value_t = Params::default().endpoints)]
    pub endpoints: usize,
    /// Timed connects per position (front, middle, end) and count.
    #[arg(long, value_name = "N", default_value_t = Params::default().samples)]
    pub samples: u32,
    /// Longest sampling time per count (sampling stops early, with a warning).
    #[arg(long, value_name = "DURATION", default_value_t = Params::default().sample_time_limit)]
    pub sample_time_limit: HumanDuration,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    IptablesLegacy,
    IptablesNft,
    Nftables,
    Ipvs,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::IptablesLegacy => Mode::IptablesLegacy,
            ModeArg::IptablesNft => Mode::IptablesNft,
            ModeArg::Nftables => Mode::Nftables,
            ModeArg::Ipvs => Mode::Ipvs,
        }
    }
}

impl From<Mode> for ModeArg {
    fn from(m: Mode) -> ModeArg {
        match m {
            Mode::IptablesLegacy => ModeArg::IptablesLegacy,
            Mode::IptablesNft => ModeArg::IptablesNft,
            Mode::Nftables => ModeArg::Nftables,
            Mode::Ipvs => ModeArg::Ipvs,
        }
    }
}

impl ProbeArgs for ServicesArgs {
    const PROBE: ProbeName = infraqual_probes::services::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            modes: self.modes.iter().map(|m| Mode::from(*m)).collect(),
            counts: self.counts.clone(),
            endpoints: self.endpoints,
            samples: self.samples,
            sample_time_limit: self.sample_time_limit,
            ..Params::default()
        };
        Ok(serde_json::to_value(params)?)
    }
}
