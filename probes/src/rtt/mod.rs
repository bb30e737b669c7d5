//! rtt: what does the overlay cost between pods? From this node to every
//! target (another node's echo responder on a named path: native, overlay),
//! UDP ping-pong with sequence numbers (loss, late replies, duplicates), TCP
//! request/response on one connection and TCP connect latency, each into a
//! full histogram, measured on a dedicated thread.
//!
//! Metrics: `<src>-><dst>/<path>/<kind>` (kind udp, tcp_rr, tcp_connect).
//! Facts: `loss["<src>-><dst>/<path>"]`, `overlay_overhead_us["<src>-><dst>"]`
//! when both native and overlay were measured.

pub mod key;
pub mod responder;
mod interleave;
mod matched;
mod rounds;
pub mod merge;
pub mod pipeline;
mod rx_stamp;
mod summary;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::{CancelToken, ProbeContext};
use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;
use crate::probe::{
    deadline_for_duration, Better, JudgedFact, Probe, ProbeName, QualifyOptions, ReportPart,
};
use crate::result::ProbeResult;
use crate::units::HumanDuration;

pub const NAME: ProbeName = ProbeName::declare("rtt");

/// The rtt probe's declaration.
pub struct Rtt;

impl Probe for Rtt {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str = "What does the overlay cost? UDP ping-pong, TCP request/response and connect to echo responders.";
    const HEAVY: bool = false;
    const PAIRWISE: bool = true;
    const JUDGED_FACTS: &'static [JudgedFact] = &[JudgedFact {
        fact: "overlay_overhead_us",
        unit: "µs",
        better: Better::Lower,
        keyed: true,
    }];
    const REPORT_PARTS: &'static [ReportPart] = &[ReportPart::RttHeatmaps, ReportPart::RttTables];
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.validate()
    }

    /// Each target and kind runs for at most its time limit.
    fn deadline(params: &Params) -> Duration {
        let loops = (params.targets.len() * params.kinds.len()).max(1) as u32;
        deadline_for_duration(params.time_limit.0.saturating_mul(loops))
    }

    fn qualify_params(_opts: &QualifyOptions<'_>) -> Params {
        Params::default()
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }

    fn merge_rounds(
        rounds: Vec<ProbeResult>,
        profile: &crate::profile::Profile,
    ) -> Result<ProbeResult, ProbeError> {
        rounds::merge(rounds, profile)
    }
}

/// Largest UDP payload (IPv4, 65535 - 20 - 8).
pub const MAX_PAYLOAD: usize = 65_507;
/// Smallest payload: the sequence number and the run's nonce.
pub const MIN_PAYLOAD: usize = 16;
pub const MAX_COUNT: u32 = 10_000_000;
/// Exchanges per second: slower than one per 10 s measures nothing a
/// lease or a person would wait for.
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most exchanges in flight per target and kind (one thread each).
pub const MAX_PIPELINE: u32 = 64;

/// One destination: a node's echo responder reached over a named path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub node: String,
    #[serde(default = "default_path")]
    pub path: String,
    pub address: IpAddr,
    pub port: u16,
}

fn default_path() -> String {
    "native".into()
}

impl Target {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// `<src>-><dst>/<path>`
    pub fn key(&self, src: &str) -> String {
        key::path_key(src, &self.node, &self.path)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Udp,
    TcpRr,
    TcpConnect,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Udp, Kind::TcpRr, Kind::TcpConnect];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Udp => "udp",
            Kind::TcpRr => "tcp_rr",
            Kind::TcpConnect => "tcp_connect",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    pub targets: Vec<Target>,
    /// Timed exchanges per target and kind.
    pub count: u32,
    /// Bytes per request (UDP datagram payload, TCP request and reply).
    pub payload: usize,
    /// Exchanges per second per target and kind; None: back to back.
    pub rate: Option<f64>,
    pub kinds: Vec<Kind>,
    /// Untimed exchanges first (ARP, FDB and route caches warm up).
    pub warmup: u32,
    /// A reply later than this counts as lost (and, if it comes, as late).
    pub timeout: HumanDuration,
    /// Longest time per target and kind; the loop stops early with a warning.
    pub time_limit: HumanDuration,
    /// Most exchanges in flight per target on a long path (see `pipeline`):
    /// 1 measures one exchange at a time on every path.
    pub pipeline: u32,
    /// The run's echo nonce (32 hex digits) that the targets' agents were
    /// told to answer; sent with every exchange. Not recorded in results.
    #[serde(skip_serializing)]
    pub echo_nonce: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            targets: Vec::new(),
            count: 1000,
            payload: 64,
            rate: None,
            kinds: Kind::ALL.to_vec(),
            warmup: 20,
            timeout: HumanDuration(Duration::from_secs(1)),
            time_limit: HumanDuration(Duration::from_secs(60)),
            pipeline: 1,
            echo_nonce: None,
        }
    }
}

impl Params {
    /// The parsed echo nonce (validated first).
    pub fn nonce_bytes(&self) -> Option<[u8; responder::NONCE_LEN]> {
        self.echo_nonce.as_deref().and_then(responder::parse_nonce)
    }

    pub fn validate(&self) -> Result<(), ProbeError> {
        if self.targets.is_empty() {
            return Err(ProbeError::invalid(
                "targets",
                "no targets: give at least one node's echo responder address",
            ));
        }
        validate_targets(&self.targets)?;
        if let Some(hex) = &self.echo_nonce {
            if responder::parse_nonce(hex).is_none() {
                return Err(ProbeError::invalid("echo_nonce", "32 hex digits"));
            }
            if self.payload < MIN_PAYLOAD + responder::NONCE_LEN {
                return Err(ProbeError::invalid(
                    "payload",
                    format!(
                        "at least {} bytes with an echo nonce",
                        MIN_PAYLOAD + responder::NONCE_LEN
                    ),
                ));
            }
        }
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(ProbeError::invalid(
                "count",
                format!("{} is outside 1..={MAX_COUNT}", self.count),
            ));
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&self.payload) {
            return Err(ProbeError::invalid(
                "payload",
                format!(
                    "{} bytes is outside {MIN_PAYLOAD}..={MAX_PAYLOAD}",
                    self.payload
                ),
            ));
        }
        if let Some(rate) = self.rate {
            let slowest =
                MIN_RATE.max(1.0 / self.time_limit.0.as_secs_f64().max(f64::MIN_POSITIVE));
            if !(rate.is_finite() && rate >= slowest && rate <= MAX_RATE) {
                return Err(ProbeError::invalid(
                    "rate",
                    format!(
                        "{rate}: give exchanges per second in [{slowest}, {MAX_RATE}] \
                         (at least one exchange per 10 s and per time_limit)"
                    ),
                ));
            }
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(ProbeError::invalid(
                "pipeline",
                format!("{} is outside 1..={MAX_PIPELINE}", self.pipeline),
            ));
        }
        if let (Some(rate), true) = (self.rate, self.pipeline > 1) {
            // Each lane waits up to `timeout` for a reply before its next
            // send, so only rate x timeout lanes keep the pace whatever the
            // path does; fewer would delay sends behind slow replies.
            let needed = rate * self.timeout.0.as_secs_f64();
            if needed > f64::from(self.pipeline) {
                return Err(ProbeError::invalid(
                    "rate",
                    format!(
                        "{rate}/s is too high for pipeline = {}: with timeout {} up to {} \
                         exchanges can be in flight; lower the rate or the timeout, or raise \
                         pipeline",
                        self.pipeline,
                        self.timeout,
                        needed.ceil()
                    ),
                ));
            }
        }
        if self.kinds.is_empty() {
            return Err(ProbeError::invalid("kinds", "empty list"));
        }
        if self.timeout.0.is_zero() || self.timeout.0 > Duration::from_secs(60) {
            return Err(ProbeError::invalid("timeout", "must be in (0, 60s]"));
        }
        if self.time_limit.0.is_zero() {
            return Err(ProbeError::invalid("time_limit", "must be above 0"));
        }
        Ok(())
    }

    /// The pacing interval, if paced.
    fn interval(&self) -> Option<Duration> {
        self.rate.map(|r| Duration::from_secs_f64(1.0 / r))
    }
}

/// Node and path names that key results (one word each) and a real port,
/// for every probe that measures against echo responders.
pub fn validate_targets(targets: &[Target]) -> Result<(), ProbeError> {
    for t in targets {
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
    Ok(())
}

/// What one measurement loop hands back.
pub(crate) struct Measured {
    pub hist: LatencyHistogram,
    pub sent: u64,
    /// Timely replies (the histogram may hold more: paced back-filling).
    pub replied: u64,
    /// UDP only: replies after the timeout (a later packet was already out).
    pub late: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub stopped_early: Option<String>,
    /// Median of each block of rounds (see `interleave`), None for a block
    /// without an answer: index b is the same rounds for every target.
    pub block_medians: Vec<Option<u64>>,
}

impl Measured {
    fn new() -> Self {
        Measured {
            hist: LatencyHistogram::new(),
            sent: 0,
            replied: 0,
            late: 0,
            duplicates: 0,
            errors: 0,
            stopped_early: None,
            block_medians: Vec::new(),
        }
    }
}

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    params.validate()?;
    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);
    result.params = match serde_json::to_value(params) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Default::default(),
    };
    let mut loss = serde_json::Map::new();
    let mut unreachable = Vec::new();
    let mut blocks = Vec::new();
    let mut pipelined = serde_json::Map::new();
    for &kind in &params.kinds {
        ctx.cancel.check(NAME)?;
        let (all, mode) = measure_on_thread(kind, params, ctx)?;
        if let pipeline::Mode::Pipelined {
            lanes,
            round,
            period,
        } = mode
        {
            // Keyed by pair like every rtt fact, so per-pair results merge.
            for target in &params.targets {
                let pair = pipelined
                    .entry(key::pair_key(&ctx.node, &target.node))
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(kinds) = pair.as_object_mut() {
                    kinds.insert(
                        kind.as_str().into(),
                        serde_json::json!({
                            "lanes": lanes,
                            "round_us": round.as_micros() as u64,
                            "period_us": period.as_micros() as u64,
                        }),
                    );
                }
            }
        }
        // A cancelled probe fails as every probe does, rather than
        // returning the part it measured as if it were whole.
        ctx.cancel.check(NAME)?;
        for (target, measured) in params.targets.iter().zip(all) {
            let key = key::RttMetricKey::new(&ctx.node, target, kind);
            if let Some(why) = &measured.stopped_early {
                result.warn(format!("{key}: {why}"));
            }
            if kind == Kind::Udp {
                loss.insert(key.path_key(), summary::loss_fact(&measured));
            }
            if measured.hist.is_empty() {
                unreachable.push(key.to_string());
                continue;
            }
            result.metric(&key.to_string(), &measured.hist, "ns")?;
            blocks.push((key, measured.block_medians));
        }
    }
    if !loss.is_empty() {
        result.fact("loss", serde_json::Value::Object(loss));
    }
    if !pipelined.is_empty() {
        result.fact("pipelined", serde_json::Value::Object(pipelined));
    }
    summary::overlay_overhead(&mut result, &ctx.node);
    matched::overlay_overhead(&mut result, &blocks, ctx);
    summary::verdicts(&mut result, ctx);
    if !unreachable.is_empty() {
        result.warn(format!(
            "no reply at all from {}: is the echo responder running and the path routed?",
            unreachable.join(", ")
        ));
    }
    result.finish(started);
    Ok(result)
}

/// Measures every target of one kind, interleaved (in lanes on a long path
/// with `pipeline` above 1), on its own OS thread (it inherits the caller's
/// network namespace) so the caller's runtime never shares the timing
/// thread. One `Measured` per target, in order.
fn measure_on_thread(
    kind: Kind,
    params: &Params,
    ctx: &ProbeContext,
) -> Result<(Vec<Measured>, pipeline::Mode), ProbeError> {
    let open = || -> Vec<interleave::Opened> {
        params
            .targets
            .iter()
            .map(|target| match kind {
                Kind::Udp => udp::UdpSession::open(target, params)
                    .map(|s| Box::new(s) as Box<dyn interleave::Session + Send>)
                    .map_err(|e| e.to_string()),
                Kind::TcpRr => tcp::TcpRrSession::open(target, params)
                    .map(|s| Box::new(s) as Box<dyn interleave::Session + Send>),
                Kind::TcpConnect => tcp::TcpConnectSession::open(target, params)
                    .map(|s| Box::new(s) as Box<dyn interleave::Session + Send>),
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("iq-rtt-{}", kind.as_str()))
            .spawn_scoped(scope, || pipeline::measure(&open, params, &ctx.cancel))
            .map_err(|e| ProbeError::io("spawning the rtt measurement thread", e))?;
        handle.join().map_err(|_| ProbeError::Failed {
            probe: NAME.into(),
            message: "the measurement thread panicked".into(),
        })
    })
}

/// Longest single sleep while pacing, so a cancellation or a lease expiry
/// is seen within this even at the slowest rate.
const PACE_SLICE: Duration = Duration::from_millis(50);

/// Sleeps until the paced send time of exchange `i` (never for a sender
/// already behind schedule); false when cancelled while waiting.
pub(crate) fn pace(
    start: Instant,
    interval: Option<Duration>,
    i: u64,
    cancel: &CancelToken,
) -> bool {
    let Some(interval) = interval else {
        return !cancel.is_cancelled();
    };
    let due = start + interval.mul_f64(i as f64);
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if due <= now {
            return true;
        }
        std::thread::sleep((due - now).min(PACE_SLICE));
    }
}

pub(crate) fn record(m: &mut Measured, ns: u64, interval: Option<Duration>) {
    match interval {
        Some(i) => m.hist.record_paced(ns, i.as_nanos() as u64),
        None => m.hist.record(ns),
    }
}

#[cfg(test)]
mod tests;
