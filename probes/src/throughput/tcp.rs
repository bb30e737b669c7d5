//! One TCP slice: N connections to the target's sink, written as fast as
//! the kernel takes bytes for the slice's length, goodput read from what
//! the receiver acknowledged (TCP_INFO), then half-closed so the receiver
//! sends its count and CPU cost.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::cpu::{CpuCost, CpuSample};
use super::wire::{self, Kind, Report};
use super::{tcpinfo, Target};
use crate::context::CancelToken;
use crate::rtt::responder::NONCE_LEN;

/// Goodput is sampled this often (the series' resolution).
pub const SAMPLE: Duration = Duration::from_secs(1);
const WRITE_CHUNK: usize = 128 * 1024;
/// How often a blocked writer looks at the clock.
const WRITE_POLL: Duration = Duration::from_millis(100);

/// What one slice measured.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// Bytes the receiver acknowledged during the slice, all connections.
    pub acked: u64,
    pub elapsed: Duration,
    /// (seconds since `origin`, Gbit/s) at the end of every sample.
    pub samples: Vec<(f64, f64)>,
    pub retransmits: u64,
    /// Mean smoothed RTT over the connections at the end, µs.
    pub rtt_us: f64,
    pub sender_cpu: CpuCost,
    /// The receiver's counts and CPU; None when it sent no report.
    pub receiver: Option<Report>,
    /// Acknowledged progress stopped while data waited (zero goodput after
    /// the first segments).
    pub stalled: Option<String>,
}

/// Runs one slice; Err when the target could not be reached at all.
pub fn slice(
    target: &Target,
    streams: u32,
    length: Duration,
    connect_timeout: Duration,
    nonce: Option<[u8; NONCE_LEN]>,
    origin: Instant,
    cancel: &CancelToken,
) -> Result<Slice, String> {
    let addr = target.socket_addr();
    let mut conns = Vec::with_capacity(streams as usize);
    for _ in 0..streams {
        conns.push(open(addr, connect_timeout, nonce)?);
    }
    let opening_acked: Vec<u64> = conns
        .iter()
        .map(|c| tcpinfo::read(c).map_or(0, |i| i.bytes_acked))
        .collect();
    let before = CpuSample::now();
    let start = Instant::now();
    let end = start + length;
    let mut out = Slice::default();
    let write_errors: Vec<Option<String>> = std::thread::scope(|scope| {
        let writers: Vec<_> = conns
            .iter()
            .map(|c| scope.spawn(move || write_until(c, end, cancel)))
            .collect();
        sample_until(&conns, &opening_acked, start, end, origin, cancel, &mut out);
        writers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Some("writer panicked".into())))
            .collect()
    });
    out.elapsed = start.elapsed();
    out.sender_cpu = CpuSample::now().since(&before);
    let infos: Vec<_> = conns.iter().filter_map(|c| tcpinfo::read(c).ok()).collect();
    out.acked = infos
        .iter()
        .zip(&opening_acked)
        .map(|(i, o)| i.bytes_acked.saturating_sub(*o))
        .sum();
    out.retransmits = infos.iter().map(|i| u64::from(i.total_retrans)).sum();
    if !infos.is_empty() {
        out.rtt_us =
            infos.iter().map(|i| f64::from(i.rtt_us)).sum::<f64>() / infos.len() as f64;
    }
    out.stalled = stall(&out, &infos, length);
    if out.stalled.is_none() {
        if let Some(e) = write_errors.into_iter().flatten().next() {
            return Err(format!("sending to {addr}: {e}"));
        }
        out.receiver = collect_reports(&conns, connect_timeout.max(REPORT_WAIT));
    }
    Ok(out)
}

/// The receiver reports after reading what was still in flight.
const REPORT_WAIT: Duration = Duration::from_secs(5);

fn open(
    addr: SocketAddr,
    timeout: Duration,
    nonce: Option<[u8; NONCE_LEN]>,
) -> Result<TcpStream, String> {
    let fail = |e: std::io::Error| format!("connecting to {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_write_timeout(Some(WRITE_POLL)).map_err(fail)?;
    if let Some(nonce) = nonce {
        stream.write_all(&nonce).map_err(fail)?;
    }
    stream
        // Streams are counted per connection: no session to name.
        .write_all(&wire::opening(Kind::TcpStream, 0))
        .map_err(fail)?;
    Ok(stream)
}

/// Writes until `end`; the error that stopped it early, if one did.
fn write_until(mut stream: &TcpStream, end: Instant, cancel: &CancelToken) -> Option<String> {
    let chunk = vec![0x5a_u8; WRITE_CHUNK];
    while Instant::now() < end && !cancel.is_cancelled() {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Some(e.to_string()),
        }
    }
    None
}

/// Samples acknowledged bytes every [`SAMPLE`] until `end`.
fn sample_until(
    conns: &[TcpStream],
    opening: &[u64],
    start: Instant,
    end: Instant,
    origin: Instant,
    cancel: &CancelToken,
    out: &mut Slice,
) {
    let mut last: u64 = opening.iter().sum();
    let mut last_at = start;
    while !cancel.is_cancelled() {
        let due = (last_at + SAMPLE).min(end);
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(WRITE_POLL));
            continue;
        }
        let acked: u64 = conns
            .iter()
            .map(|c| tcpinfo::read(c).map_or(0, |i| i.bytes_acked))
            .sum();
        let seconds = now.duration_since(last_at).as_secs_f64();
        if seconds > 0.0 {
            let gbit = acked.saturating_sub(last) as f64 * 8.0 / seconds / 1e9;
            out.samples
                .push((now.duration_since(origin).as_secs_f64(), gbit));
        }
        last = acked;
        last_at = now;
        if due >= end {
            return;
        }
    }
}

/// Zero goodput after the first sample while segments waited unacknowledged:
/// what a path that drops large packets without telling anyone looks like.
fn stall(out: &Slice, infos: &[tcpinfo::TcpInfo], length: Duration) -> Option<String> {
    let later = out.samples.get(1..)?;
    if later.is_empty() || later.iter().any(|(_, g)| *g > 0.0) {
        return None;
    }
    if !infos.iter().any(|i| i.unacked > 0) {
        return None;
    }
    Some(format!(
        "stalled: no goodput after the first second ({} bytes acknowledged in {:.0} s) while \
         {}-byte segments waited unacknowledged: large packets vanish on this path; run the mtu \
         probe on it",
        out.acked,
        length.as_secs_f64(),
        infos.iter().map(|i| i.snd_mss).max().unwrap_or(0)
    ))
}

/// Half-closes every connection and reads the receiver's reports: bytes
/// summed; the CPU of the widest window (every connection's window covers
/// the same receiving process).
fn collect_reports(conns: &[TcpStream], wait: Duration) -> Option<Report> {
    let until = Instant::now() + wait;
    for c in conns {
        let _ = c.shutdown(Shutdown::Write);
    }
    let mut combined: Option<Report> = None;
    for c in conns {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || c.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        let report = Report::read_from(c)?;
        let merged = combined.get_or_insert_with(Report::default);
        merged.bytes += report.bytes;
        if report.cpu.wall_s > merged.cpu.wall_s {
            merged.cpu = report.cpu;
        }
    }
    combined
}
