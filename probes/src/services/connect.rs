//! First-packet latency: the time of a blocking TCP connect() to a service
//! VIP, from a dedicated thread inside the node namespace. Only a
//! connection's first packet (the SYN, conntrack state NEW) walks the NAT
//! rules; everything after it follows the conntrack entry. So every sample is
//! a new socket with a kernel-chosen ephemeral port: a new 5-tuple, hence a
//! new conntrack entry and a full rule walk, which is what KEP-3866's
//! "first packet latency" measures. The socket is then closed with RST
//! (SO_LINGER 0) so no TIME_WAIT piles up and a reused tuple meets a CLOSEd
//! conntrack entry, which conntrack replaces with a NEW one.
//!
//! Positions are sampled round-robin (front, middle, end, front, ...) so that
//! drift on a noisy machine spreads over all of them alike.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use socket2::SockAddr;

use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;
use crate::system::netns::{self, Netns};
use crate::tcp_connect::{sockaddr, ConnectSocket};

/// A connect that has not completed in this long has failed (a broken
/// layout would otherwise hang in SYN retries for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failures after which sampling stops with an error.
const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// Per-target connect latencies from one sampling run.
#[derive(Debug)]
pub struct Sampled {
    pub histograms: Vec<LatencyHistogram>,
    /// The endpoint index each target answered with before timing started.
    pub identities: Vec<u8>,
    pub failures: u64,
    /// Stopped by the time limit before all samples were taken.
    pub truncated: bool,
}

/// Sampling plan for one service count.
#[derive(Clone, Debug)]
pub struct Plan {
    pub targets: Vec<SocketAddrV4>,
    pub warmup: u32,
    pub samples: u32,
    pub time_limit: Duration,
}

/// Runs `plan` from a fresh thread inside `ns` and waits for it.
pub fn sample(ns: &Netns, plan: &Plan, cancel: &CancelToken) -> Result<Sampled, ProbeError> {
    netns::run_on_thread(ns.name(), "iq-svc-connect", || run_plan(plan, cancel))?
}

/// Which endpoints `target` reaches over `attempts` connections (tests use
/// it to prove the layout really DNATs to every endpoint).
#[cfg(test)]
pub fn identify_many(
    ns: &Netns,
    target: SocketAddrV4,
    attempts: u32,
) -> Result<Vec<u8>, ProbeError> {
    netns::run_on_thread(ns.name(), "iq-svc-identify", || {
        (0..attempts)
            .map(|_| identify(&sockaddr(target)).map_err(|e| failed(format!("{target}: {e}"))))
            .collect()
    })?
}

fn failed(message: String) -> ProbeError {
    ProbeError::Failed {
        probe: super::NAME.into(),
        message,
    }
}

fn run_plan(plan: &Plan, cancel: &CancelToken) -> Result<Sampled, ProbeError> {
    let addrs: Vec<SockAddr> = plan.targets.iter().map(|t| sockaddr(*t)).collect();
    // Ground truth first: each target must reach a real endpoint.
    let mut identities = Vec::with_capacity(addrs.len());
    for (addr, target) in addrs.iter().zip(&plan.targets) {
        let id = identify(addr).map_err(|e| {
            failed(format!(
                "service {target} does not reach an endpoint (layout not DNATing?): {e}"
            ))
        })?;
        identities.push(id);
    }

    let mut histograms = vec![LatencyHistogram::new(); addrs.len()];
    let mut failures = 0u64;
    let mut consecutive = 0u32;
    let mut truncated = false;
    let deadline = Instant::now() + plan.time_limit;
    for round in 0..plan.warmup + plan.samples {
        if cancel.is_cancelled() {
            return Err(ProbeError::Cancelled {
                probe: super::NAME.into(),
            });
        }
        if Instant::now() >= deadline {
            truncated = true;
            break;
        }
        for (slot, addr) in addrs.iter().enumerate() {
            match connect_once(addr) {
                Ok(ns) => {
                    consecutive = 0;
                    if round >= plan.warmup {
                        histograms[slot].record(ns);
                    }
                }
                Err(e) => {
                    failures += 1;
                    consecutive += 1;
                    if consecutive >= MAX_CONSECUTIVE_FAILURES {
                        return Err(failed(format!(
                            "{consecutive} connects in a row failed, last to {}: {e}",
                            plan.targets[slot]
                        )));
                    }
                }
            }
        }
    }
    Ok(Sampled {
        histograms,
        identities,
        failures,
        truncated,
    })
}

/// One timed connect, in ns.
fn connect_once(addr: &SockAddr) -> std::io::Result<u64> {
    let elapsed = ConnectSocket::new(CONNECT_TIMEOUT)?.timed_connect(addr)?;
    Ok(elapsed.as_nanos() as u64)
}

/// Connects and reads the endpoint's one-byte identity.
fn identify(addr: &SockAddr) -> std::io::Result<u8> {
    let socket = ConnectSocket::new(CONNECT_TIMEOUT)?;
    socket.connect(addr)?;
    socket.read_byte()
}
