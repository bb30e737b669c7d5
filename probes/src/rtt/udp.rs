//! UDP ping-pong: one datagram out, wait for its echo, next. Each datagram
//! carries a sequence number and the run's nonce, so a reply that comes after
//! its timeout (late, i.e. reordered behind a later probe), a duplicate, or a
//! stray datagram from another run is told apart from the awaited reply.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::interleave::Session;
use super::rx_stamp;
use super::{Measured, Params, Target, MAX_PAYLOAD};
use crate::error::ProbeError;

/// Replies examined while waiting for one sequence number (strays, late
/// replies, duplicates): bounds the inner loop.
const MAX_READS_PER_PROBE: u32 = 64;
/// Timed probes without any reply after which the path counts as down.
const DEAD_AFTER: u64 = 10;
/// Send errors tolerated before the loop gives up on the target.
const MAX_ERRORS: u64 = 100;

/// One target's UDP ping-pong state, kept across the exchanges the driver
/// interleaves with other targets'.
pub(crate) struct UdpSession {
    socket: UdpSocket,
    nonce: u64,
    warmup: u64,
    out: Vec<u8>,
    back: Vec<u8>,
    /// One bit per sequence number: has a reply for it been seen?
    seen: Vec<u64>,
}

impl UdpSession {
    pub(crate) fn open(target: &Target, params: &Params) -> Result<Self, ProbeError> {
        let addr = target.socket_addr();
        let what = || format!("rtt udp {addr}");
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(|e| ProbeError::io(what(), e))?;
        socket
            .connect(addr)
            .map_err(|e| ProbeError::io(what(), e))?;
        socket
            .set_read_timeout(Some(params.timeout.0))
            .map_err(|e| ProbeError::io(what(), e))?;
        rx_stamp::enable(&socket).map_err(|e| ProbeError::io(what(), e))?;
        let nonce = nonce();
        let total = u64::from(params.warmup) + u64::from(params.count);
        let mut out = vec![0u8; params.payload];
        out[8..16].copy_from_slice(&nonce.to_le_bytes());
        // A gated responder echoes only datagrams ending in the run's nonce.
        let mut free_end = out.len();
        if let Some(run_nonce) = params.nonce_bytes() {
            let at = out.len() - run_nonce.len();
            out[at..].copy_from_slice(&run_nonce);
            free_end = at;
        }
        if free_end >= rx_stamp::TURN_END {
            out[rx_stamp::TURN_AT..rx_stamp::TURN_AT + 8].copy_from_slice(rx_stamp::TURN_MAGIC);
        }
        Ok(UdpSession {
            socket,
            nonce,
            warmup: u64::from(params.warmup),
            out,
            back: vec![0u8; MAX_PAYLOAD + 1],
            seen: vec![0u64; total.div_ceil(64) as usize],
        })
    }
}

impl Session for UdpSession {
    fn given_up(&self, m: &Measured) -> Option<String> {
        if m.sent >= DEAD_AFTER && m.replied == 0 && m.late == 0 {
            Some(format!("no reply to the first {DEAD_AFTER} probes: path down?"))
        } else if m.errors >= MAX_ERRORS {
            Some(format!("{} send/receive errors: giving up", m.errors))
        } else {
            None
        }
    }

    fn exchange(&mut self, seq: u64, m: &mut Measured) -> Option<Duration> {
        self.out[..8].copy_from_slice(&seq.to_le_bytes());
        let sent_wall = rx_stamp::wall_ns();
        let t0 = Instant::now();
        if self.socket.send(&self.out).is_err() {
            m.errors += 1;
            return None;
        }
        for _ in 0..MAX_READS_PER_PROBE {
            match rx_stamp::recv(&self.socket, &mut self.back) {
                Ok((n, stamp)) => {
                    let elapsed = rx_stamp::round_trip(stamp, sent_wall, t0.elapsed());
                    let held = rx_stamp::turnaround(&self.back[..n]);
                    let elapsed = elapsed.checked_sub(held).unwrap_or(elapsed);
                    let Some(got) = parse(&self.back[..n], self.nonce) else {
                        continue; // not ours
                    };
                    if got == seq {
                        mark(&mut self.seen, got);
                        return Some(elapsed);
                    }
                    if got < seq && got >= self.warmup {
                        if marked(&self.seen, got) {
                            m.duplicates += 1;
                        } else {
                            m.late += 1;
                            mark(&mut self.seen, got);
                        }
                    }
                }
                Err(e) if rx_stamp::is_timeout(e.kind()) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // ICMP port unreachable and the like: this probe is lost.
                    m.errors += 1;
                    return None;
                }
            }
        }
        None
    }
}

fn parse(datagram: &[u8], nonce: u64) -> Option<u64> {
    let seq = u64::from_le_bytes(datagram.get(..8)?.try_into().ok()?);
    let n = u64::from_le_bytes(datagram.get(8..16)?.try_into().ok()?);
    (n == nonce).then_some(seq)
}

fn mark(seen: &mut [u64], seq: u64) {
    if let Some(word) = seen.get_mut((seq / 64) as usize) {
        *word |= 1 << (seq % 64);
    }
}

fn marked(seen: &[u64], seq: u64) -> bool {
    seen.get((seq / 64) as usize)
        .is_some_and(|w| w & (1 << (seq % 64)) != 0)
}

/// A per-run value that tells this run's replies from any other's.
fn nonce() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let stack = &local as *const u8 as u64;
    wall ^ (u64::from(std::process::id()) << 32) ^ stack.rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_bits_and_nonce_parsing() {
        let mut seen = vec![0u64; 2];
        mark(&mut seen, 70);
        assert!(marked(&seen, 70) && !marked(&seen, 69));
        mark(&mut seen, 10_000); // out of range: ignored, not a panic
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&5u64.to_le_bytes());
        d[8..].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(parse(&d, 9), Some(5));
        assert_eq!(parse(&d, 8), None);
        assert_eq!(parse(&d[..10], 9), None);
    }
}
