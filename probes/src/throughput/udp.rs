//! One UDP step: datagrams to the target's sink at an offered packet rate
//! for the step's length, counted there per session; the control
//! connection opens the session (the sink acknowledges it before the first
//! datagram leaves) and, half-closed after a drain, brings back the count.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::cpu::{CpuCost, CpuSample};
use super::wire::{self, Kind, Report, SESSION_OPEN};
use super::Target;
use crate::context::CancelToken;
use crate::rtt::responder::NONCE_LEN;

/// Datagrams still in flight when sending stops arrive within this.
const DRAIN: Duration = Duration::from_millis(200);
/// Datagrams sent back to back before the clock is read again.
const BURST: u64 = 64;
const REPORT_WAIT: Duration = Duration::from_secs(5);

/// What one step measured.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub offered_pps: u64,
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams the kernel refused (its buffer full): offered, never sent.
    pub refused: u64,
    pub elapsed: Duration,
    pub sender_cpu: CpuCost,
    pub receiver: Option<Report>,
}

impl Step {
    pub fn loss_pct(&self) -> Option<f64> {
        let r = self.receiver.as_ref()?;
        if self.sent == 0 {
            return None;
        }
        Some(self.sent.saturating_sub(r.packets) as f64 * 100.0 / self.sent as f64)
    }
}

#[allow(clippy::too_many_arguments)]
pub fn step(
    target: &Target,
    pps: u64,
    payload: usize,
    length: Duration,
    connect_timeout: Duration,
    nonce: Option<[u8; NONCE_LEN]>,
    session: u64,
    cancel: &CancelToken,
) -> Result<Step, String> {
    let addr = target.socket_addr();
    let control = open_session(addr, connect_timeout, nonce, session)?;
    let socket = connect_udp(addr).map_err(|e| format!("UDP socket to {addr}: {e}"))?;
    let mut datagram = vec![0u8; payload];
    if let Some(nonce) = nonce {
        datagram[payload - NONCE_LEN..].copy_from_slice(&nonce);
    }
    let mut out = Step {
        offered_pps: pps,
        ..Step::default()
    };
    let before = CpuSample::now();
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        let elapsed = now.duration_since(start);
        if elapsed >= length || cancel.is_cancelled() {
            break;
        }
        let due = (elapsed.as_secs_f64() * pps as f64) as u64 + 1;
        if seq >= due {
            let next = start + Duration::from_secs_f64(seq as f64 / pps as f64);
            let wait = next.saturating_duration_since(now);
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait);
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        for _ in 0..(due - seq).min(BURST) {
            wire::datagram_header(&mut datagram, session, seq);
            match socket.send(&datagram) {
                Ok(_) => out.sent += 1,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    out.refused += 1
                }
                // ENOBUFS and ICMP errors of earlier datagrams: the packet
                // did not leave.
                Err(_) => out.refused += 1,
            }
            seq += 1;
        }
    }
    out.elapsed = start.elapsed();
    out.sender_cpu = CpuSample::now().since(&before);
    std::thread::sleep(DRAIN);
    let _ = control.shutdown(Shutdown::Write);
    if control.set_read_timeout(Some(REPORT_WAIT)).is_ok() {
        out.receiver = Report::read_from(&control);
    }
    Ok(out)
}

fn open_session(
    addr: SocketAddr,
    timeout: Duration,
    nonce: Option<[u8; NONCE_LEN]>,
    session: u64,
) -> Result<TcpStream, String> {
    let fail = |e: std::io::Error| format!("connecting to {addr}: {e}");
    let mut control = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    control.set_read_timeout(Some(timeout)).map_err(fail)?;
    if let Some(nonce) = nonce {
        control.write_all(&nonce).map_err(fail)?;
    }
    control
        .write_all(&wire::opening(Kind::UdpControl, session))
        .map_err(fail)?;
    let mut ack = [0u8; 1];
    match control.read(&mut ack) {
        Ok(1) if ack[0] == SESSION_OPEN => Ok(control),
        _ => Err(format!(
            "{addr} did not open a UDP session: it does not serve the throughput data port \
             (an infraqual agent's or `lab echo`'s echo port, with this run's nonce)"
        )),
    }
}

fn connect_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(addr)?;
    Ok(socket)
}
