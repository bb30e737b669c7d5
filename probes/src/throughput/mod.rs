//! throughput: what does the overlay cost per byte? From this node to every
//! target (another node's echo port, where the throughput sink answers
//! behind the same nonce gate and limits) over each named path: TCP streams
//! with 1 and N parallel connections for a duration, goodput from what the
//! receiver acknowledged (TCP_INFO) with retransmits and RTT, and the CPU
//! both ends spent per GB from the kernel's accounting; UDP at rising
//! offered packet rates, with the received rate, loss and reordering the
//! sink counted. Paths alternate slice by slice (and step by step) so
//! native and overlay see the same machine.
//!
//! Facts (keys `<src>-><dst>/<path>/tcp<N>`): `tcp_goodput_gbit`,
//! `tcp_retransmits`, `tcp_rtt_us`, `cpu_per_gb`, `cpu_s_per_gb`, `stalls`;
//! `overlay_tax` per `<src>-><dst>/tcp<N>` when both paths were measured;
//! `udp` (steps) and `udp_max_rate_pps` per `<src>-><dst>/<path>/udp`.
//! Series `goodput_gbit/<key>`.

mod cpu;
mod interleave;
pub mod sink;
mod summary;
mod tcp;
mod tcpinfo;
mod udp;
mod wire;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{
    deadline_for_duration, Better, JudgedFact, Probe, ProbeName, QualifyOptions, ReportPart,
};
use crate::result::ProbeResult;
use crate::rtt::responder::{self, MAX_PER_PEER};
pub use crate::rtt::Target;
use crate::units::HumanDuration;

pub const NAME: ProbeName = ProbeName::declare("throughput");

/// Parallel connections one run may open to one target: the echo
/// responder's per-peer limit.
pub const MAX_STREAMS: u32 = MAX_PER_PEER as u32;
pub const MIN_SLICE: Duration = Duration::from_secs(2);
pub const MAX_SLICE: Duration = Duration::from_secs(60);
pub const MAX_DURATION: Duration = Duration::from_secs(600);
pub const MAX_STREAM_COUNTS: usize = 4;
pub const MAX_UDP_RATES: usize = 16;
/// Offered packets per second: far above what one sending thread reaches.
pub const MAX_UDP_PPS: u64 = 5_000_000;
pub const MIN_UDP_STEP: Duration = Duration::from_secs(1);
pub const MAX_UDP_STEP: Duration = Duration::from_secs(60);
/// Largest UDP payload (IPv4, 65535 - 20 - 8).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tcp,
    Udp,
}

/// The throughput probe's declaration.
pub struct Throughput;

impl Probe for Throughput {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str = "What does the overlay cost per byte? TCP goodput and CPU per GB, UDP loss at offered packet rates, to other nodes' data ports.";
    const HEAVY: bool = true;
    const PAIRWISE: bool = true;
    const JUDGED_FACTS: &'static [JudgedFact] = &[
        JudgedFact {
            fact: "udp_max_rate_pps",
            unit: "packets/s",
            better: Better::Higher,
            keyed: true,
        },
        JudgedFact {
            fact: "tcp_goodput_gbit",
            unit: "Gbit/s",
            better: Better::Higher,
            keyed: true,
        },
        JudgedFact {
            fact: "cpu_s_per_gb",
            unit: "s/GB",
            better: Better::Lower,
            keyed: true,
        },
    ];
    const REPORT_PARTS: &'static [ReportPart] = &[ReportPart::ThroughputUdpLoss];
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.validate()
    }

    fn deadline(params: &Params) -> Duration {
        deadline_for_duration(params.expected_duration())
    }

    fn qualify_params(_opts: &QualifyOptions<'_>) -> Params {
        Params::default()
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    pub targets: Vec<Target>,
    pub modes: Vec<Mode>,
    /// Parallel TCP connections, one measurement per entry (e.g. 1 and 4).
    pub streams: Vec<u32>,
    /// TCP time per target and stream count.
    pub duration: HumanDuration,
    /// Paths and targets take turns for this long each, so each sees the
    /// same machine; a whole number of seconds.
    pub slice: HumanDuration,
    /// Offered UDP packet rates, one step each, lowest first.
    pub udp_rates: Vec<u64>,
    /// Bytes per datagram (64 measures packets per second, not bytes).
    pub udp_payload: usize,
    /// UDP time per target and rate.
    pub udp_step: HumanDuration,
    /// `udp_max_rate_pps` is the highest offered rate losing at most this.
    pub loss_threshold_pct: f64,
    /// Longest wait for a connection.
    pub connect_timeout: HumanDuration,
    /// The run's echo nonce (32 hex digits) the targets' agents were told
    /// to accept; opens every connection. Not recorded in results.
    #[serde(skip_serializing)]
    pub echo_nonce: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            targets: Vec::new(),
            modes: vec![Mode::Tcp, Mode::Udp],
            streams: vec![1, 4],
            duration: HumanDuration(Duration::from_secs(10)),
            slice: HumanDuration(Duration::from_secs(2)),
            udp_rates: vec![10_000, 50_000, 100_000, 200_000],
            udp_payload: 64,
            udp_step: HumanDuration(Duration::from_secs(2)),
            loss_threshold_pct: 1.0,
            connect_timeout: HumanDuration(Duration::from_secs(2)),
            echo_nonce: None,
        }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), ProbeError> {
        if self.targets.is_empty() {
            return Err(ProbeError::invalid(
                "targets",
                "no targets: give at least one node's echo port address",
            ));
        }
        crate::rtt::validate_targets(&self.targets)?;
        if let Some(hex) = &self.echo_nonce {
            if responder::parse_nonce(hex).is_none() {
                return Err(ProbeError::invalid("echo_nonce", "32 hex digits"));
            }
        }
        if self.streams.is_empty() || self.streams.len() > MAX_STREAM_COUNTS {
            return Err(ProbeError::invalid(
                "streams",
                format!("give 1 to {MAX_STREAM_COUNTS} connection counts, e.g. 1,4"),
            ));
        }
        if let Some(bad) = self.streams.iter().find(|n| !(1..=MAX_STREAMS).contains(n)) {
            return Err(ProbeError::invalid(
                "streams",
                format!(
                    "{bad} is outside 1..={MAX_STREAMS} (the echo port's connections per peer)"
                ),
            ));
        }
        let slice = self.slice.0;
        if !(MIN_SLICE..=MAX_SLICE).contains(&slice) || slice.subsec_nanos() != 0 {
            return Err(ProbeError::invalid(
                "slice",
                format!(
                    "{}: give whole seconds in {}..={}",
                    self.slice,
                    HumanDuration(MIN_SLICE),
                    HumanDuration(MAX_SLICE)
                ),
            ));
        }
        if self.duration.0 < slice || self.duration.0 > MAX_DURATION {
            return Err(ProbeError::invalid(
                "duration",
                format!(
                    "{}: give at least one slice ({}) and at most {}",
                    self.duration,
                    self.slice,
                    HumanDuration(MAX_DURATION)
                ),
            ));
        }
        let timeout = self.connect_timeout.0;
        if timeout.is_zero() || timeout > Duration::from_secs(30) {
            return Err(ProbeError::invalid("connect_timeout", "must be in (0, 30s]"));
        }
        if self.modes.is_empty() {
            return Err(ProbeError::invalid("modes", "empty list: give tcp, udp or both"));
        }
        self.validate_udp()
    }

    fn validate_udp(&self) -> Result<(), ProbeError> {
        if self.udp_rates.is_empty() || self.udp_rates.len() > MAX_UDP_RATES {
            return Err(ProbeError::invalid(
                "udp_rates",
                format!("give 1 to {MAX_UDP_RATES} offered packet rates"),
            ));
        }
        if let Some(bad) = self.udp_rates.iter().find(|r| !(1..=MAX_UDP_PPS).contains(r)) {
            return Err(ProbeError::invalid(
                "udp_rates",
                format!("{bad} packets/s is outside 1..={MAX_UDP_PPS}"),
            ));
        }
        if self.udp_rates.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProbeError::invalid("udp_rates", "give rates lowest first, each once"));
        }
        let smallest = wire::DATAGRAM_HEADER
            + if self.echo_nonce.is_some() { responder::NONCE_LEN } else { 0 };
        if !(smallest..=MAX_UDP_PAYLOAD).contains(&self.udp_payload) {
            return Err(ProbeError::invalid(
                "udp_payload",
                format!(
                    "{} bytes is outside {smallest}..={MAX_UDP_PAYLOAD} (header and nonce included)",
                    self.udp_payload
                ),
            ));
        }
        if !(MIN_UDP_STEP..=MAX_UDP_STEP).contains(&self.udp_step.0) {
            return Err(ProbeError::invalid(
                "udp_step",
                format!(
                    "{}: give {}..={}",
                    self.udp_step,
                    HumanDuration(MIN_UDP_STEP),
                    HumanDuration(MAX_UDP_STEP)
                ),
            ));
        }
        let t = self.loss_threshold_pct;
        if !(t.is_finite() && t > 0.0 && t < 100.0) {
            return Err(ProbeError::invalid(
                "loss_threshold_pct",
                format!("{t}: give a percentage in (0, 100)"),
            ));
        }
        Ok(())
    }

    fn measures(&self, mode: Mode) -> bool {
        self.modes.contains(&mode)
    }

    fn nonce_bytes(&self) -> Option<[u8; responder::NONCE_LEN]> {
        self.echo_nonce.as_deref().and_then(responder::parse_nonce)
    }

    /// Slices per target and stream count (the last one may run short).
    fn slices(&self) -> u32 {
        let (d, s) = (self.duration.0.as_secs_f64(), self.slice.0.as_secs_f64());
        (d / s).ceil().max(1.0) as u32
    }

    /// What the measurement should take: every slice plus its connects and
    /// report wait.
    fn expected_duration(&self) -> Duration {
        let targets = self.targets.len().max(1) as u32;
        let mut total = Duration::ZERO;
        if self.measures(Mode::Tcp) {
            let per_slice = self.slice.0 + self.connect_timeout.0 + Duration::from_secs(5);
            total += per_slice.saturating_mul(self.slices() * self.streams.len() as u32 * targets);
        }
        if self.measures(Mode::Udp) {
            let per_step = self.udp_step.0 + self.connect_timeout.0 * 2 + Duration::from_secs(6);
            total += per_step.saturating_mul(self.udp_rates.len() as u32 * targets);
        }
        total
    }
}

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    params.validate()?;
    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);
    result.params = crate::probe::params_object(params);
    let mut failures = Vec::new();
    let mut measured_any = false;
    if params.measures(Mode::Tcp) {
        let tcp = interleave::tcp(params, ctx, started)?;
        measured_any |= summary::tcp(&mut result, &ctx.node, &tcp, &mut failures);
    }
    if params.measures(Mode::Udp) {
        let udp = interleave::udp(params, ctx)?;
        measured_any |= summary::udp(&mut result, &ctx.node, params, &udp, &mut failures);
    }
    if !measured_any {
        return Err(ProbeError::Failed {
            probe: NAME.into(),
            message: failures.join("; "),
        });
    }
    for f in failures {
        result.warn(f);
    }
    result.finish(started);
    Ok(result)
}

#[cfg(test)]
mod tests;
