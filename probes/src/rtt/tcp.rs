//! TCP request/response on one connection (netperf TCP_RR's shape) and TCP
//! connect latency (the handshake alone: the socket is made before the clock
//! starts and reset-closed after it stops, so no TIME_WAIT piles up).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{pace, record, Measured, Params, Target};
use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::tcp_connect::{self, ConnectSocket};

/// Errors tolerated before the loop gives up on the target.
const MAX_ERRORS: u64 = 20;

fn stop_reason(
    m: &Measured,
    params: &Params,
    cancel: &CancelToken,
    deadline: Instant,
) -> Option<String> {
    if cancel.is_cancelled() {
        Some(format!("cancelled after {} of {}", m.sent, params.count))
    } else if Instant::now() >= deadline {
        Some(format!(
            "time limit {} reached after {} of {}",
            params.time_limit, m.sent, params.count
        ))
    } else if m.errors >= MAX_ERRORS {
        Some(format!("{} errors: giving up", m.errors))
    } else {
        None
    }
}

pub(crate) fn request_response(
    target: &Target,
    params: &Params,
    cancel: &CancelToken,
) -> Result<Measured, ProbeError> {
    let addr = target.socket_addr();
    let mut m = Measured::new();
    let deadline = Instant::now() + params.time_limit.0;
    let mut stream = match open(addr, params.timeout.0, params.nonce_bytes()) {
        Ok(s) => s,
        Err(e) => {
            m.stopped_early = Some(format!("cannot connect to {addr}: {e}"));
            return Ok(m);
        }
    };
    let interval = params.interval();
    let mut out = vec![0u8; params.payload];
    let mut back = vec![0u8; params.payload];
    for (i, b) in out.iter_mut().enumerate() {
        *b = i as u8;
    }
    let warmup = u64::from(params.warmup);
    let total = warmup + u64::from(params.count);
    let start = Instant::now();
    for i in 0..total {
        if let Some(why) = stop_reason(&m, params, cancel, deadline) {
            m.stopped_early = Some(why);
            break;
        }
        if !pace(start, interval, i, cancel) {
            continue;
        }
        let t0 = Instant::now();
        let exchanged = stream
            .write_all(&out)
            .and_then(|()| stream.read_exact(&mut back));
        let elapsed = t0.elapsed();
        let timed = i >= warmup;
        if timed {
            m.sent += 1;
        }
        match exchanged {
            Ok(()) if timed => {
                m.replied += 1;
                record(&mut m, elapsed.as_nanos() as u64, interval);
            }
            Ok(()) => {}
            Err(_) => {
                // The stream is out of step after a failed exchange: start over.
                m.errors += 1;
                match open(addr, params.timeout.0, params.nonce_bytes()) {
                    Ok(s) => stream = s,
                    Err(e) => {
                        m.stopped_early = Some(format!("reconnect to {addr} failed: {e}"));
                        break;
                    }
                }
            }
        }
    }
    Ok(m)
}

fn open(
    addr: SocketAddr,
    timeout: Duration,
    nonce: Option<[u8; super::responder::NONCE_LEN]>,
) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // A gated responder echoes only after the run's nonce.
    if let Some(nonce) = nonce {
        stream.write_all(&nonce)?;
    }
    Ok(stream)
}

pub(crate) fn connect(
    target: &Target,
    params: &Params,
    cancel: &CancelToken,
) -> Result<Measured, ProbeError> {
    let SocketAddr::V4(v4) = target.socket_addr() else {
        let mut m = Measured::new();
        m.stopped_early = Some("tcp_connect timing supports IPv4 targets only".into());
        return Ok(m);
    };
    let sockaddr = tcp_connect::sockaddr(v4);
    let interval = params.interval();
    let mut m = Measured::new();
    let deadline = Instant::now() + params.time_limit.0;
    let warmup = u64::from(params.warmup);
    let total = warmup + u64::from(params.count);
    let start = Instant::now();
    for i in 0..total {
        if let Some(why) = stop_reason(&m, params, cancel, deadline) {
            m.stopped_early = Some(why);
            break;
        }
        if !pace(start, interval, i, cancel) {
            continue;
        }
        let socket = ConnectSocket::new(params.timeout.0)
            .map_err(|e| ProbeError::io("rtt tcp_connect: socket", e))?;
        let connected = socket.timed_connect(&sockaddr);
        let timed = i >= warmup;
        if timed {
            m.sent += 1;
        }
        match connected {
            Ok(elapsed) if timed => {
                m.replied += 1;
                record(&mut m, elapsed.as_nanos() as u64, interval);
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => m.errors += 1,
        }
    }
    Ok(m)
}
