//! The receiving side, served on the echo responder's port so it inherits
//! its nonce gate and connection limits: TCP connections that open with
//! [`MAGIC`](super::wire::MAGIC) are counted instead of echoed, and so are
//! datagrams of a session a UDP control connection opened.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cpu::CpuSample;
use crate::rtt::responder::read_exact_within;
use super::wire::{self, Kind, Report, MAGIC, OPENING_LEN, SESSION_OPEN};

/// UDP sessions counted at once; more control connections are closed.
pub const MAX_UDP_SESSIONS: usize = 64;
/// Longest life of one counted connection: a sender's slice or step is at
/// most a minute, so this only ends connections a sender abandoned.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(180);
/// How long the opening may take to arrive after the nonce.
const OPENING_WAIT: Duration = Duration::from_secs(2);
const READ_BUFFER: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, Default)]
struct UdpCount {
    packets: u64,
    bytes: u64,
    reordered: u64,
    highest: Option<u64>,
}

/// Counters of the UDP sessions open now.
#[derive(Debug, Default)]
pub struct Sink {
    udp: Mutex<HashMap<u64, UdpCount>>,
    /// The thread that receives datagrams (0: not known), whose run-queue
    /// wait tells a competitor for its CPU from a lossy network.
    udp_thread: AtomicU64,
}

impl Sink {
    /// Called by the thread that will hand datagrams to [`Sink::datagram`].
    pub fn receives_udp_on_this_thread(&self) {
        if let Some(tid) = this_thread_id() {
            self.udp_thread.store(tid, Ordering::Relaxed);
        }
    }

    /// The receiving thread's time waiting for a CPU while runnable, ns.
    fn udp_thread_wait_ns(&self) -> Option<u64> {
        let tid = self.udp_thread.load(Ordering::Relaxed);
        if tid == 0 {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        crate::steal::schedstat::parse_schedstat(&text).map(|(_, wait)| wait)
    }

    /// Counts a datagram if it belongs to an open session. True when it was
    /// a throughput datagram at all (it is then never echoed).
    pub fn datagram(&self, buf: &[u8]) -> bool {
        let Some((session, seq)) = wire::parse_datagram(buf) else {
            return false;
        };
        let mut table = self.udp.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = table.get_mut(&session) {
            count.packets += 1;
            count.bytes += buf.len() as u64;
            match count.highest {
                Some(h) if seq < h => count.reordered += 1,
                _ => count.highest = Some(seq),
            }
        }
        true
    }

    /// Serves a connection [`opens_with_magic`] accepted: counts until the
    /// sender half-closes, then sends the report. `stopped` ends it early.
    pub fn serve(&self, mut stream: TcpStream, stopped: impl Fn() -> bool) {
        let Some((kind, session)) = read_opening(&mut stream) else {
            return;
        };
        let before = CpuSample::now();
        let mut report = match kind {
            Kind::TcpStream => match drain(&mut stream, &stopped) {
                Some(bytes) => Report {
                    bytes,
                    ..Report::default()
                },
                None => return,
            },
            Kind::UdpControl => {
                if !self.open_session(session) {
                    return;
                }
                if stream.write_all(&[SESSION_OPEN]).is_err() {
                    self.close_session(session);
                    return;
                }
                let wait_before = self.udp_thread_wait_ns();
                let ended = drain(&mut stream, &stopped);
                let count = self.close_session(session);
                if ended.is_none() {
                    return;
                }
                let wait = self.udp_thread_wait_ns().zip(wait_before);
                Report {
                    bytes: count.bytes,
                    packets: count.packets,
                    reordered: count.reordered,
                    receiver_wait_s: wait.map(|(after, before)| {
                        after.saturating_sub(before) as f64 / 1e9
                    }),
                    ..Report::default()
                }
            }
        };
        report.cpu = CpuSample::now().since(&before);
        let _ = stream.write_all(&report.to_line());
    }

    fn open_session(&self, session: u64) -> bool {
        let mut table = self.udp.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_UDP_SESSIONS || table.contains_key(&session) {
            return false;
        }
        table.insert(session, UdpCount::default());
        true
    }

    fn close_session(&self, session: u64) -> UdpCount {
        let mut table = self.udp.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&session).unwrap_or_default()
    }
}

/// Whether a connection's next bytes are a throughput opening, looking
/// without consuming (an echo connection keeps every byte). Decides as soon
/// as the bytes seen cannot be [`MAGIC`]; gives up after [`OPENING_WAIT`].
pub fn opens_with_magic(stream: &TcpStream) -> bool {
    let mut seen = [0u8; MAGIC.len()];
    let until = Instant::now() + OPENING_WAIT;
    while Instant::now() < until {
        match stream.peek(&mut seen) {
            Ok(0) => return false,
            Ok(n) if seen[..n] != MAGIC[..n] => return false,
            Ok(n) if n == MAGIC.len() => return true,
            // A prefix of MAGIC: the rest is on its way.
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

fn read_opening(stream: &mut TcpStream) -> Option<(Kind, u64)> {
    let mut opening = [0u8; OPENING_LEN];
    read_exact_within(stream, &mut opening, OPENING_WAIT)
        .then(|| wire::parse_opening(&opening))?
}

/// Reads and counts until the sender half-closes (Some(bytes)), or None
/// when stopped, broken or past [`MAX_CONNECTION_LIFE`].
fn drain(stream: &mut TcpStream, stopped: &impl Fn() -> bool) -> Option<u64> {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    let until = Instant::now() + MAX_CONNECTION_LIFE;
    while !stopped() && Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => return Some(bytes),
            Ok(n) => bytes += n as u64,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return None,
        }
    }
    None
}

/// This thread's kernel id, from /proc/thread-self (a link to
/// `<pid>/task/<tid>`).
fn this_thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
