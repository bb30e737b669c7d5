//! The schedule: every target (each node and path) takes its turn slice by
//! slice (TCP) and step by step (UDP), the order alternating each round,
//! so native and overlay are measured on the same machine minutes apart
//! at most, and a change of load lands in both rather than in their
//! difference.

use std::time::{Duration, Instant};

use super::cpu::CpuCost;
use super::{tcp, udp, Params, Target, NAME};
use crate::context::ProbeContext;
use crate::error::ProbeError;

/// What every slice of one (target, stream count) added up to.
#[derive(Clone, Debug, Default)]
pub struct TcpTotals {
    pub slices: u32,
    pub acked: u64,
    pub elapsed: Duration,
    pub retransmits: u64,
    pub rtt_us_sum: f64,
    pub samples: Vec<(f64, f64)>,
    pub sender_cpu: CpuCost,
    /// Bytes and CPU of the receiver over the slices that reported.
    pub received: u64,
    pub receiver_cpu: CpuCost,
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

/// Index of the j-th target to go in `round`: alternating direction, so no
/// path always runs on a machine fresh from the other's turn.
fn turn(round: u32, j: usize, n: usize) -> usize {
    if round % 2 == 0 {
        j
    } else {
        n - 1 - j
    }
}

/// Every stream count, slice by slice; one entry per (target, count).
pub fn tcp(
    params: &Params,
    ctx: &ProbeContext,
    origin: Instant,
) -> Result<Vec<(Target, u32, TcpTotals)>, ProbeError> {
    let nonce = params.nonce_bytes();
    let n = params.targets.len();
    let mut measured = Vec::new();
    for &streams in &params.streams {
        let mut totals: Vec<TcpTotals> = vec![TcpTotals::default(); n];
        for round in 0..params.slices() {
            let left = params.duration.0.saturating_sub(params.slice.0 * round);
            let length = params.slice.0.min(left).max(tcp::SAMPLE * 2);
            for j in 0..n {
                let i = turn(round, j, n);
                ctx.cancel.check(NAME)?;
                if !totals[i].live() {
                    continue;
                }
                let timeout = params.connect_timeout.0;
                match tcp::slice(
                    &params.targets[i],
                    streams,
                    length,
                    timeout,
                    nonce,
                    origin,
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
    Ok(measured)
}

/// One target's UDP steps, lowest rate first.
#[derive(Clone, Debug, Default)]
pub struct UdpTotals {
    pub steps: Vec<udp::Step>,
    pub failed: Option<String>,
}

/// Every offered rate, step by step; one entry per target.
pub fn udp(params: &Params, ctx: &ProbeContext) -> Result<Vec<(Target, UdpTotals)>, ProbeError> {
    let nonce = params.nonce_bytes();
    let n = params.targets.len();
    let mut totals: Vec<UdpTotals> = vec![UdpTotals::default(); n];
    let mut sessions = SessionIds::new();
    for (round, &pps) in params.udp_rates.iter().enumerate() {
        for j in 0..n {
            let i = turn(round as u32, j, n);
            ctx.cancel.check(NAME)?;
            if totals[i].failed.is_some() {
                continue;
            }
            match udp::step(
                &params.targets[i],
                pps,
                params.udp_payload,
                params.udp_step.0,
                params.connect_timeout.0,
                nonce,
                sessions.next(),
                &ctx.cancel,
            ) {
                Ok(step) => totals[i].steps.push(step),
                Err(why) => totals[i].failed = Some(why),
            }
        }
    }
    ctx.cancel.check(NAME)?;
    Ok(params.targets.iter().cloned().zip(totals).collect())
}

/// Session ids no other sender to the same sink is likely to pick: seeded
/// from the clock and the process id.
struct SessionIds(crate::random::SplitMix64);

impl SessionIds {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SessionIds(crate::random::SplitMix64::new(
            nanos ^ (u64::from(std::process::id()) << 32),
        ))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
}
