//! TCP request/response on one connection (netperf TCP_RR's shape) and TCP
//! connect latency (the handshake alone: the socket is made before the clock
//! starts and reset-closed after it stops, so no TIME_WAIT piles up).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{pace, record, Measured, Params, Target};
use crate::context::CancelToken;
use crate::error::ProbeError;

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
    let mut stream = match open(addr, params.timeout.0) {
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
        pace(start, interval, i);
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
                match open(addr, params.timeout.0) {
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

fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

pub(crate) fn connect(
    target: &Target,
    params: &Params,
    cancel: &CancelToken,
) -> Result<Measured, ProbeError> {
    let addr = target.socket_addr();
    let SocketAddr::V4(v4) = addr else {
        let mut m = Measured::new();
        m.stopped_early = Some("tcp_connect timing supports IPv4 targets only".into());
        return Ok(m);
    };
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let timeout = params.timeout.0;
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
        pace(start, interval, i);
        let socket =
            new_socket(timeout).map_err(|e| ProbeError::io("rtt tcp_connect: socket", e))?;
        let t0 = Instant::now();
        // SAFETY: a valid socket and a sockaddr_in of the stated length.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                &sockaddr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let elapsed = t0.elapsed();
        let timed = i >= warmup;
        if timed {
            m.sent += 1;
        }
        if rc == 0 {
            if timed {
                m.replied += 1;
                record(&mut m, elapsed.as_nanos() as u64, interval);
            }
            reset_on_close(&socket);
        } else {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                m.errors += 1;
            }
        }
        drop(socket);
    }
    Ok(m)
}

/// A blocking TCP socket whose connect gives up after `timeout` (Linux
/// applies SO_SNDTIMEO to connect).
fn new_socket(timeout: Duration) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set_opt(&owned, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
    let nodelay: libc::c_int = 1;
    set_opt(&owned, libc::IPPROTO_TCP, libc::TCP_NODELAY, &nodelay)?;
    Ok(owned)
}

/// SO_LINGER {on, 0}: close sends RST, leaving no TIME_WAIT behind a
/// thousand measured connects.
fn reset_on_close(socket: &OwnedFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = set_opt(socket, libc::SOL_SOCKET, libc::SO_LINGER, &linger);
}

fn set_opt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: value points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
