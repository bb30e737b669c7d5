//! mtu: will large packets vanish? Per path, DF-set UDP probes against the
//! target's echo responder in a size sweep (binary search between a small
//! size that must pass and the interface MTU, then the answer confirmed with
//! repeats), beside the interface MTU the sender claims and whether ICMP
//! "fragmentation needed" came back. A path that delivers less than claimed
//! with no ICMP is a black hole: small requests work, large ones hang.
//!
//! Facts: `paths["<src>-><dst>/<path>"] = {iface_mtu, max_payload, icmp_seen,
//! blackhole, ...}`; verdict `mtu.blackhole` (paths that are black holes).

mod rounds;
mod socket;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{CancelToken, ProbeContext};
use crate::error::ProbeError;
use crate::probe::{Probe, ProbeName, QualifyOptions};
use crate::result::{ProbeResult, Status};
use crate::rtt::responder::{parse_nonce, MTU_MAGIC, MTU_REPLY_LEN, NONCE_LEN};
pub use crate::rtt::Target;
use crate::units::HumanDuration;
use socket::DfSocket;

pub const NAME: ProbeName = ProbeName::declare("mtu");

/// The mtu probe's declaration.
pub struct Mtu;

impl Probe for Mtu {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str =
        "Will large packets vanish? DF-set UDP size sweep per path; finds MTU black holes.";
    const HEAVY: bool = false;
    const PAIRWISE: bool = true;
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.validate()
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
/// IPv4 (20) + UDP (8) header bytes on top of the payload.
pub const HEADER_BYTES: u32 = 28;
/// The smallest probe: it must pass, or the path is down rather than small.
const FLOOR_PAYLOAD: u32 = 64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    pub targets: Vec<Target>,
    /// Tries per size before the size counts as not delivered.
    pub attempts: u32,
    /// Probes sent at the answer (and one byte above) to confirm it.
    pub repeats: u32,
    /// Wait for each reply.
    pub timeout: HumanDuration,
    /// Largest packet tried when the interface claims more (jumbo frames).
    pub max_packet: u32,
    /// The run's echo nonce (32 hex digits) the targets' agents answer;
    /// the last bytes of every probe. Not recorded in results.
    #[serde(skip_serializing)]
    pub echo_nonce: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            targets: Vec::new(),
            attempts: 2,
            repeats: 5,
            timeout: HumanDuration(Duration::from_millis(250)),
            max_packet: 9000,
            echo_nonce: None,
        }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), ProbeError> {
        if self.targets.is_empty() {
            return Err(ProbeError::invalid("targets", "no targets"));
        }
        if self.targets.iter().any(|t| !t.address.is_ipv4()) {
            return Err(ProbeError::invalid("targets.address", "IPv4 targets only"));
        }
        if self
            .echo_nonce
            .as_deref()
            .is_some_and(|hex| parse_nonce(hex).is_none())
        {
            return Err(ProbeError::invalid("echo_nonce", "32 hex digits"));
        }
        if !(1..=20).contains(&self.attempts) || !(1..=100).contains(&self.repeats) {
            return Err(ProbeError::invalid(
                "attempts/repeats",
                "attempts 1..=20, repeats 1..=100",
            ));
        }
        if self.timeout.0.is_zero() || self.timeout.0 > Duration::from_secs(10) {
            return Err(ProbeError::invalid("timeout", "must be in (0, 10s]"));
        }
        if !(576..=65_535).contains(&self.max_packet) {
            return Err(ProbeError::invalid("max_packet", "must be in 576..=65535"));
        }
        Ok(())
    }
}

/// What the sweep found on one path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathMtu {
    pub iface: Option<String>,
    /// The MTU the sender's interface claims (bytes of IP packet).
    pub iface_mtu: u32,
    /// The kernel's path MTU for the route before and after the sweep.
    pub route_mtu_before: Option<u32>,
    pub route_mtu_after: Option<u32>,
    /// Largest UDP payload delivered (0: nothing came back).
    pub max_payload: u32,
    /// max_payload plus headers: the packet size the path carries.
    pub max_packet: u32,
    pub icmp_seen: bool,
    pub icmp_mtu: Option<u32>,
    pub confirmed: u32,
    pub above_delivered: u32,
    pub probes: u32,
    pub blackhole: bool,
}

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    params.validate()?;
    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);
    if let Ok(Value::Object(m)) = serde_json::to_value(params) {
        result.params = m;
    }
    let mut paths = serde_json::Map::new();
    let mut holes = Vec::new();
    for target in &params.targets {
        ctx.cancel.check(NAME)?;
        let key = target.key(&ctx.node);
        let found = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("iq-mtu".into())
                .spawn_scoped(s, || sweep(target, params, &ctx.cancel))
                .map_err(|e| ProbeError::io("spawning the mtu thread", e))?
                .join()
                .map_err(|_| ProbeError::Failed {
                    probe: NAME.into(),
                    message: "the sweep thread panicked".into(),
                })?
        })?;
        if found.max_payload == 0 {
            result.warn(format!("{key}: no reply even to {FLOOR_PAYLOAD}-byte probes: path down or no echo responder"));
        } else if found.max_packet < found.iface_mtu && found.icmp_seen {
            result.warn(format!(
                "{key}: carries {} of the {} bytes the interface claims; ICMP fragmentation-needed came back (path MTU discovery works, but the MTU is wrong)",
                found.max_packet, found.iface_mtu
            ));
        }
        if found.blackhole {
            holes.push((key.clone(), found.max_packet, found.iface_mtu));
        }
        paths.insert(key, serde_json::to_value(&found).unwrap_or(Value::Null));
    }
    result.fact("paths", Value::Object(paths));
    judge(&mut result, &holes, &ctx.profile);
    result.finish(started);
    Ok(result)
}

/// The `mtu.blackhole` verdict: how many paths are black holes, each
/// named with `(key, bytes carried, bytes claimed)`.
fn judge(result: &mut ProbeResult, holes: &[(String, u32, u32)], profile: &crate::profile::Profile) {
    let mut verdict = profile.judge("mtu.blackhole", holes.len() as f64);
    if verdict.status == Status::Fail {
        let details: Vec<String> = holes
            .iter()
            .map(|(k, carried, claimed)| {
                format!("{k} carries {carried} of {claimed} bytes with no ICMP: set the overlay MTU to {carried}")
            })
            .collect();
        verdict.note = format!("{}; {}", verdict.note, details.join("; "));
    }
    result.verdicts.push(verdict);
}

fn sweep(target: &Target, params: &Params, cancel: &CancelToken) -> Result<PathMtu, ProbeError> {
    let addr = target.socket_addr();
    let socket = DfSocket::connect(addr, params.timeout.0)
        .map_err(|e| ProbeError::io(format!("mtu probe socket to {addr}"), e))?;
    let route_mtu_before = socket.path_mtu();
    let iface = socket.local_ip().and_then(socket::interface_of);
    let iface_mtu = iface
        .as_ref()
        .map(|(_, m)| *m)
        .or(route_mtu_before)
        .unwrap_or(1500);
    let mut prober = Prober {
        socket,
        params,
        cancel,
        token: 0,
        probes: 0,
        icmp: None,
        buf: vec![0u8; params.max_packet as usize],
        reply: vec![0u8; 2048],
    };
    let top = iface_mtu
        .min(params.max_packet)
        .saturating_sub(HEADER_BYTES);
    let mut max_payload = 0;
    if prober.delivered(FLOOR_PAYLOAD)? {
        if prober.delivered(top)? {
            max_payload = top;
        } else {
            // Invariant: lo delivered, hi not.
            let (mut lo, mut hi) = (FLOOR_PAYLOAD, top);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if prober.delivered(mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            max_payload = lo;
        }
    }
    let (mut confirmed, mut above_delivered) = (0, 0);
    if max_payload > 0 {
        for _ in 0..params.repeats {
            confirmed += u32::from(prober.once(max_payload)?);
            if max_payload < top {
                above_delivered += u32::from(prober.once(max_payload + 1)?);
            }
        }
    }
    let max_packet = if max_payload == 0 {
        0
    } else {
        max_payload + HEADER_BYTES
    };
    let icmp_seen = prober.icmp.is_some();
    let ceiling = top + HEADER_BYTES;
    Ok(PathMtu {
        iface: iface.map(|(n, _)| n),
        iface_mtu,
        route_mtu_before,
        route_mtu_after: prober.socket.path_mtu(),
        max_payload,
        max_packet,
        icmp_seen,
        icmp_mtu: prober.icmp,
        confirmed,
        above_delivered,
        probes: prober.probes,
        blackhole: max_payload > 0 && max_packet < ceiling && !icmp_seen,
    })
}

struct Prober<'a> {
    socket: DfSocket,
    params: &'a Params,
    cancel: &'a CancelToken,
    token: u64,
    probes: u32,
    icmp: Option<u32>,
    buf: Vec<u8>,
    reply: Vec<u8>,
}

impl Prober<'_> {
    /// Delivered within `attempts` tries.
    fn delivered(&mut self, payload: u32) -> Result<bool, ProbeError> {
        for _ in 0..self.params.attempts {
            if self.once(payload)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One DF probe of `payload` bytes: did its reply come back in time?
    fn once(&mut self, payload: u32) -> Result<bool, ProbeError> {
        self.cancel.check(NAME)?;
        self.token += 1;
        self.probes += 1;
        let len = (payload as usize).clamp(MTU_REPLY_LEN + NONCE_LEN, self.buf.len());
        self.buf[..8].copy_from_slice(MTU_MAGIC);
        self.buf[8..16].copy_from_slice(&self.token.to_le_bytes());
        self.buf[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        if let Some(nonce) = self.params.echo_nonce.as_deref().and_then(parse_nonce) {
            self.buf[len - NONCE_LEN..len].copy_from_slice(&nonce);
        }
        if let Err(e) = self.socket.send(&self.buf[..len]) {
            self.note_errors();
            return match e.raw_os_error() {
                // Too big to leave this host (or a pending ICMP error): not delivered.
                Some(libc::EMSGSIZE) | Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) => {
                    Ok(false)
                }
                _ => Err(ProbeError::io("mtu probe send", e)),
            };
        }
        let deadline = Instant::now() + self.params.timeout.0;
        while Instant::now() < deadline {
            match self.socket.recv(&mut self.reply) {
                Ok(Some(n)) => {
                    let r = &self.reply[..n];
                    if n >= 16 && r.starts_with(MTU_MAGIC) && r[8..16] == self.token.to_le_bytes() {
                        return Ok(true);
                    }
                }
                Ok(None) => break,
                Err(_) => self.note_errors(),
            }
        }
        self.note_errors();
        Ok(false)
    }

    fn note_errors(&mut self) {
        if let Some(f) = self.socket.drain_errors().last() {
            self.icmp = Some(f.mtu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtt::responder::EchoResponder;
    use std::net::{Ipv4Addr, SocketAddr};

    #[test]
    fn loopback_carries_what_it_claims_and_is_no_black_hole() {
        let r = EchoResponder::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            CancelToken::new(),
        )
        .unwrap();
        let params = Params {
            targets: vec![Target {
                node: "b".into(),
                path: "native".into(),
                address: Ipv4Addr::LOCALHOST.into(),
                port: r.port(),
            }],
            max_packet: 1500,
            ..Params::default()
        };
        let res = run(&params, &ProbeContext::local()).unwrap();
        let p = &res.facts["paths"]["local->b/native"];
        assert_eq!(p["iface"], "lo");
        // lo claims 65536; the sweep is capped at max_packet.
        assert_eq!(p["max_payload"], 1500 - HEADER_BYTES);
        assert_eq!(p["blackhole"], false);
        assert_eq!(p["icmp_seen"], false);
        assert_eq!(res.verdicts[0].check, "mtu.blackhole");
        assert_eq!(res.verdicts[0].status, Status::Pass);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(Params::default().validate().is_err());
        let t = Target {
            node: "b".into(),
            path: "x".into(),
            address: "::1".parse().unwrap(),
            port: 1,
        };
        let p = Params {
            targets: vec![t],
            ..Params::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("IPv4"));
    }
}
