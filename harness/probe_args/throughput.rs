use anyhow::Result;
use clap::{Args, ValueEnum};
use infraqual_probes::throughput::{Mode, Params, Target};
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
    /// What to measure.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_values_t = Params::default().modes.into_iter().map(ModeArg::from)
    )]
    pub modes: Vec<ModeArg>,
    /// Parallel TCP connections, one measurement per count.
    #[arg(long, value_delimiter = ',', default_values_t = Params::default().streams)]
    pub streams: Vec<u32>,
    /// TCP time per target and stream count.
    #[arg(long, default_value_t = Params::default().duration)]
    pub duration: HumanDuration,
    /// Targets and paths take turns for this long each (whole seconds).
    #[arg(long, default_value_t = Params::default().slice)]
    pub slice: HumanDuration,
    /// Offered UDP packet rates, lowest first (packets per second; k and M
    /// suffixes, e.g. 10k,100k,1M).
    #[arg(long, value_delimiter = ',', value_parser = parse_pps, default_values_t = Params::default().udp_rates)]
    pub udp_rates: Vec<u64>,
    /// Bytes per UDP datagram.
    #[arg(long, default_value_t = Params::default().udp_payload)]
    pub udp_payload: usize,
    /// UDP time per target and rate.
    #[arg(long, default_value_t = Params::default().udp_step)]
    pub udp_step: HumanDuration,
    /// The highest rate losing at most this percentage is reported.
    #[arg(long, default_value_t = Params::default().loss_threshold_pct)]
    pub loss_threshold_pct: f64,
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
            modes: self.modes.iter().map(|m| Mode::from(*m)).collect(),
            streams: self.streams.clone(),
            duration: self.duration,
            slice: self.slice,
            udp_rates: self.udp_rates.clone(),
            udp_payload: self.udp_payload,
            udp_step: self.udp_step,
            loss_threshold_pct: self.loss_threshold_pct,
            connect_timeout: self.connect_timeout,
            ..Params::default()
        };
        Ok(serde_json::to_value(params)?)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Tcp,
    Udp,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Tcp => Mode::Tcp,
            ModeArg::Udp => Mode::Udp,
        }
    }
}

impl From<Mode> for ModeArg {
    fn from(m: Mode) -> ModeArg {
        match m {
            Mode::Tcp => ModeArg::Tcp,
            Mode::Udp => ModeArg::Udp,
        }
    }
}

/// `50000`, `50k`, `1.5M` packets per second.
fn parse_pps(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'M')) => (&t[..i], 1e6),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}`: expected packets per second, e.g. 50000, 50k or 1.5M"))?;
    let pps = value * scale;
    if !(pps.is_finite() && pps >= 1.0 && pps.fract() == 0.0) {
        return Err(format!("`{s}`: a whole number of packets per second, at least 1"));
    }
    Ok(pps as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_pps;

    #[test]
    fn packet_rates_take_k_and_m_suffixes() {
        assert_eq!(parse_pps("50000"), Ok(50_000));
        assert_eq!(parse_pps("50k"), Ok(50_000));
        assert_eq!(parse_pps("1.5M"), Ok(1_500_000));
        for bad in ["", "k", "0", "-5", "1.5", "10m", "fast"] {
            assert!(parse_pps(bad).is_err(), "{bad}");
        }
    }
}
