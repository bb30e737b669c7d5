use anyhow::Result;
use clap::{Args, ValueEnum};
use infraqual_probes::rtt::{Kind, Params, Target};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::target::parse_target;
use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct RttArgs {
    /// A node's echo responder (an agent's, or `infraqual lab echo`) on a
    /// named path; repeat for more targets and paths.
    #[arg(long = "target", value_name = "NAME=ADDR:PORT[@PATH]", required = true, value_parser = parse_target)]
    pub targets: Vec<Target>,
    /// Timed exchanges per target and kind.
    #[arg(long, default_value_t = 1000)]
    pub count: u32,
    /// Bytes per request.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Exchanges per second (paced, coordinated-omission corrected); default back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// What to measure.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "udp,tcp-rr,tcp-connect"
    )]
    pub kinds: Vec<KindArg>,
    /// A reply later than this counts as lost.
    #[arg(long, default_value = "1s")]
    pub timeout: HumanDuration,
    /// Untimed exchanges first.
    #[arg(long, default_value_t = 20)]
    pub warmup: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Udp,
    TcpRr,
    TcpConnect,
}

impl ProbeArgs for RttArgs {
    const PROBE: ProbeName = ProbeName::Rtt;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            targets: self.targets.clone(),
            count: self.count,
            payload: self.payload,
            rate: self.rate,
            kinds: self
                .kinds
                .iter()
                .map(|k| match k {
                    KindArg::Udp => Kind::Udp,
                    KindArg::TcpRr => Kind::TcpRr,
                    KindArg::TcpConnect => Kind::TcpConnect,
                })
                .collect(),
            timeout: self.timeout,
            warmup: self.warmup,
            ..Params::default()
        };
        Ok(serde_json::to_value(params)?)
    }
}
