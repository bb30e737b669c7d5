use anyhow::Result;
use clap::{Args, ValueEnum};
use infraqual_probes::rtt::{Kind, Params, Target};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{ProbeError, ProbeName};
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
    #[arg(long, default_value_t = Params::default().count)]
    pub count: u32,
    /// Bytes per request.
    #[arg(long, default_value_t = Params::default().payload)]
    pub payload: usize,
    /// Exchanges per second (paced, coordinated-omission corrected); default back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// What to measure.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_values_t = Params::default().kinds.into_iter().map(KindArg::from)
    )]
    pub kinds: Vec<KindArg>,
    /// A reply later than this counts as lost.
    #[arg(long, default_value_t = Params::default().timeout)]
    pub timeout: HumanDuration,
    /// Untimed exchanges first.
    #[arg(long, default_value_t = Params::default().warmup)]
    pub warmup: u32,
    /// Most exchanges in flight per target on a path whose round trip is
    /// 1 ms or more (one socket or connection each); 1: one at a time.
    #[arg(long, default_value_t = Params::default().pipeline)]
    pub pipeline: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Udp,
    TcpRr,
    TcpConnect,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Udp => Kind::Udp,
            KindArg::TcpRr => Kind::TcpRr,
            KindArg::TcpConnect => Kind::TcpConnect,
        }
    }
}

impl From<Kind> for KindArg {
    fn from(k: Kind) -> KindArg {
        match k {
            Kind::Udp => KindArg::Udp,
            Kind::TcpRr => KindArg::TcpRr,
            Kind::TcpConnect => KindArg::TcpConnect,
        }
    }
}

impl ProbeArgs for RttArgs {
    const PROBE: ProbeName = infraqual_probes::rtt::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            targets: self.targets.clone(),
            count: self.count,
            payload: self.payload,
            rate: self.rate,
            kinds: self.kinds.iter().map(|k| Kind::from(*k)).collect(),
            timeout: self.timeout,
            warmup: self.warmup,
            pipeline: self.pipeline,
            ..Params::default()
        };
        // Bad input names the flag it came from, not the parameter.
        if let Err(ProbeError::InvalidParam { name, reason }) = params.validate() {
            let flag = if name.starts_with("targets") {
                "target".to_string()
            } else {
                name.replace('_', "-")
            };
            anyhow::bail!("--{flag}: {reason}");
        }
        Ok(serde_json::to_value(params)?)
    }
}
