//! throughput: what does the overlay cost per byte? From this node to every
//! target (another node's echo port, where the throughput sink answers
//! behind the same nonce gate and limits) over each named path: TCP streams
//! with 1 and N parallel connections for a duration, goodput from what the
//! receiver acknowledged (TCP_INFO) with retransmits and RTT, and the CPU
//! both ends spent per GB from the kernel's accounting. Paths alternate
//! slice by slice so native and overlay see the same machine.
//!
//! Facts (keys `<src>-><dst>/<path>/tcp<N>`): `tcp_goodput_gbit`,
//! `tcp_retransmits`, `tcp_rtt_us`, `cpu_per_gb`, `stalls`; `overlay_tax`
//! per `<src>-><dst>/tcp<N>` when both paths were measured. Series
//! `goodput_gbit/<key>`.

mod cpu;
pub mod sink;
mod summary;
mod tcp;
mod tcpinfo;
mod wire;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{deadline_for_duration, Better, JudgedFact, Probe, ProbeName, QualifyOptions};
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

/// The throughput probe's declaration.
pub struct Throughput;

impl Probe for Throughput {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str = "What does the overlay cost per byte? TCP goodput, retransmits and CPU per GB to other nodes' data ports.";
    const HEAVY: bool = true;
    const PAIRWISE: bool = true;
    const JUDGED_FACTS: &'static [JudgedFact] = &[
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
    /// Parallel TCP connections, one measurement per entry (e.g. 1 and 4).
    pub streams: Vec<u32>,
    /// TCP time per target and stream count.
    pub duration: HumanDuration,
    /// Paths and targets take turns for this long each, so each sees the
    /// same machine; a whole number of seconds.
    pub slice: HumanDuration,
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
            streams: vec![1, 4],
            duration: HumanDuration(Duration::from_secs(10)),
            slice: HumanDuration(Duration::from_secs(2)),
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
        for t in &self.targets {
            if t.node.is_empty() || t.node.contains(['/', ' ']) || t.node.contains("->") {
                return Err(ProbeError::invalid(
                    "targets.node",
                    format!("`{}`: one word without `/` or `->`", t.node),
                ));
            }
            if t.path.is_empty() || t.path.contains(['/', ' ']) {
                return Err(ProbeError::invalid(
                    "targets.path",
                    format!("`{}`: one word without `/`", t.path),
                ));
            }
            if t.port == 0 {
                return Err(ProbeError::invalid("targets.port", "port 0"));
            }
        }
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
        Ok(())
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
        let per_slice = self.slice.0 + self.connect_timeout.0 + Duration::from_secs(5);
        let slices = self.slices() * self.streams.len() as u32 * self.targets.len().max(1) as u32;
        per_slice.saturating_mul(slices)
    }
}

/// What every slice of one (target, stream count) added up to.
#[derive(Clone, Debug, Default)]
pub(crate) struct TcpTotals {
    pub slices: u32,
    pub acked: u64,
    pub elapsed: Duration,
    pub retransmits: u64,
    pub rtt_us_sum: f64,
    pub samples: Vec<(f64, f64)>,
    pub sender_cpu: cpu::CpuCost,
    /// Bytes and CPU of the receiver over the slices that reported.
    pub received: u64,
    pub receiver_cpu: cpu::CpuCost,
    pub unreported: u32,
    pub stalled: Option<String>,
    pub failed: Option<String>,
}

impl TcpTotals {
    fn add(&mut self, s: tcp::Slice) {
        self.slices += 1;
        self.acked += s.acked;
        self.elapsed += s.elapsed;
        self.retransmits += s.retransmits;
        self.rtt_us_sum += s.rtt_us;
        self.samples.extend(s.samples);
        self.sender_cpu.add(&s.sender_cpu);
        match s.receiver {
            Some(r) => {
                self.received += r.bytes;
                self.receiver_cpu.add(&r.cpu);
            }
            None if s.stalled.is_none() => self.unreported += 1,
            None => {}
        }
        if self.stalled.is_none() {
            self.stalled = s.stalled;
        }
    }

    /// Still worth another slice: reachable and moving bytes.
    fn live(&self) -> bool {
        self.failed.is_none() && self.stalled.is_none()
    }
}

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    params.validate()?;
    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);
    result.params = crate::probe::params_object(params);
    let nonce = params.nonce_bytes();
    let mut measured = Vec::new();
    for &streams in &params.streams {
        let mut totals: Vec<TcpTotals> = params.targets.iter().map(|_| TcpTotals::default()).collect();
        for round in 0..params.slices() {
            let length = params
                .slice
                .0
                .min(params.duration.0.saturating_sub(params.slice.0 * round))
                .max(Duration::from_secs(1));
            let n = params.targets.len();
            for j in 0..n {
                // Alternate who goes first, so no path always runs on a
                // machine fresh from the other's slice.
                let i = if round % 2 == 0 { j } else { n - 1 - j };
                ctx.cancel.check(NAME)?;
                if !totals[i].live() {
                    continue;
                }
                let target = &params.targets[i];
                match tcp::slice(
                    target,
                    streams,
                    length,
                    params.connect_timeout.0,
                    nonce,
                    started,
                    &ctx.cancel,
                ) {
                    Ok(s) => totals[i].add(s),
                    Err(why) => totals[i].failed = Some(why),
                }
            }
        }
        ctx.cancel.check(NAME)?;
        for (target, t) in params.targets.iter().zip(totals) {
            measured.push((target.clone(), streams, t));
        }
    }
    summary::tcp(&mut result, &ctx.node, &measured)?;
    result.finish(started);
    Ok(result)
}

#[cfg(test)]
mod tests;
