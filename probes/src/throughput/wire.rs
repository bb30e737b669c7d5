//! What travels between the sender and the receiving side (the target's
//! echo port). A TCP connection opens with the run's nonce (when the
//! responder is gated), [`MAGIC`], a kind byte and a session id; a UDP
//! datagram carries [`MAGIC`], the session id and a sequence number first
//! and the nonce last, as every datagram a gated responder answers does.
//! The receiver's report is one JSON line sent back when the sender
//! half-closes the connection.

use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

use super::cpu::CpuCost;

/// First bytes of every throughput connection and datagram; the echo
/// responder hands what starts with them to the sink instead of echoing.
pub const MAGIC: &[u8; 8] = b"IQTPUT01";
/// MAGIC, kind, session id.
pub const OPENING_LEN: usize = 8 + 1 + 8;
/// MAGIC, session id, sequence number.
pub const DATAGRAM_HEADER: usize = 8 + 8 + 8;
/// The sink's answer to a UDP control opening: the session counts from now.
pub const SESSION_OPEN: u8 = b'+';
/// Longest report line a sender reads.
const MAX_REPORT: u64 = 4096;

/// What a connection asks the receiving side for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Count every byte until the sender half-closes.
    TcpStream = 1,
    /// Count the session's datagrams until the sender half-closes.
    UdpControl = 2,
}

pub fn opening(kind: Kind, session: u64) -> [u8; OPENING_LEN] {
    let mut out = [0u8; OPENING_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8] = kind as u8;
    out[9..].copy_from_slice(&session.to_le_bytes());
    out
}

pub fn parse_opening(bytes: &[u8; OPENING_LEN]) -> Option<(Kind, u64)> {
    if &bytes[..8] != MAGIC {
        return None;
    }
    let kind = match bytes[8] {
        1 => Kind::TcpStream,
        2 => Kind::UdpControl,
        _ => return None,
    };
    Some((kind, u64::from_le_bytes(bytes[9..].try_into().ok()?)))
}

/// Writes a datagram's header into the start of `buf`.
pub fn datagram_header(buf: &mut [u8], session: u64, seq: u64) {
    buf[..8].copy_from_slice(MAGIC);
    buf[8..16].copy_from_slice(&session.to_le_bytes());
    buf[16..24].copy_from_slice(&seq.to_le_bytes());
}

/// Session id and sequence number of a throughput datagram.
pub fn parse_datagram(buf: &[u8]) -> Option<(u64, u64)> {
    if buf.len() < DATAGRAM_HEADER || &buf[..8] != MAGIC {
        return None;
    }
    let session = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    let seq = u64::from_le_bytes(buf[16..24].try_into().ok()?);
    Some((session, seq))
}

/// What the receiving side counted and spent, sent back at the end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub bytes: u64,
    /// UDP: datagrams of the session.
    pub packets: u64,
    /// UDP: datagrams that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// The receiving process and machine over the connection's life.
    pub cpu: CpuCost,
    /// UDP: how long the thread receiving datagrams waited for a CPU while
    /// it had work (another task on its CPU), s.
    #[serde(default)]
    pub receiver_wait_s: Option<f64>,
}

impl Report {
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }

    /// Reads one report line (bounded), None if the peer closed without one
    /// or sent something else.
    pub fn read_from(stream: impl Read) -> Option<Report> {
        let mut line = String::new();
        BufReader::new(stream.take(MAX_REPORT))
            .read_line(&mut line)
            .ok()?;
        serde_json::from_str(line.trim_end()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings_and_datagrams_round_trip() {
        let o = opening(Kind::UdpControl, 42);
        assert_eq!(parse_opening(&o), Some((Kind::UdpControl, 42)));
        let mut bad = o;
        bad[8] = 9;
        assert_eq!(parse_opening(&bad), None);
        let mut d = [0u8; 64];
        datagram_header(&mut d, 7, 1_000_000);
        assert_eq!(parse_datagram(&d), Some((7, 1_000_000)));
        assert_eq!(parse_datagram(&d[..20]), None);
        assert_eq!(parse_datagram(b"hello echo, not a throughput packet"), None);
    }

    #[test]
    fn reports_travel_as_one_line() {
        let r = Report {
            bytes: 5,
            packets: 2,
            reordered: 1,
            cpu: CpuCost {
                user_s: 0.5,
                ..CpuCost::default()
            },
            receiver_wait_s: Some(0.25),
        };
        assert_eq!(Report::read_from(&r.to_line()[..]), Some(r));
        assert_eq!(Report::read_from(&b""[..]), None);
    }
}
