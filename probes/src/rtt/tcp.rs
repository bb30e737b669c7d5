//! TCP request/response on one connection (netperf TCP_RR's shape) and TCP
//! connect latency (the handshake alone: the socket is made before the clock
//! starts and reset-closed after it stops, so no TIME_WAIT piles up).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::interleave::Session;
use super::{Measured, Params, Target};
use crate::tcp_connect::{self, ConnectSocket};

/// Errors tolerated before the loop gives up on the target.
const MAX_ERRORS: u64 = 20;

fn too_many_errors(m: &Measured) -> Option<String> {
    (m.errors >= MAX_ERRORS).then(|| format!("{} errors: giving up", m.errors))
}

/// One target's request/response connection, kept across the exchanges the
/// driver interleaves with other targets'.
pub(crate) struct TcpRrSession {
    addr: SocketAddr,
    timeout: Duration,
    /// The run's echo nonce, sent first on every connection.
    nonce: Option<[u8; super::responder::NONCE_LEN]>,
    /// None once a reconnect failed: the target is given up.
    stream: Option<TcpStream>,
    broken: Option<String>,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl TcpRrSession {
    /// A session whose connection failed is returned as the reason, which
    /// the driver reports for that target.
    pub(crate) fn open(target: &Target, params: &Params) -> Result<Self, String> {
        let addr = target.socket_addr();
        let stream =
            open(addr, params.timeout.0, params.nonce_bytes())
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let out: Vec<u8> = (0..params.payload).map(|i| i as u8).collect();
        Ok(TcpRrSession {
            addr,
            timeout: params.timeout.0,
            nonce: params.nonce_bytes(),
            stream: Some(stream),
            broken: None,
            out,
            back: vec![0u8; params.payload],
        })
    }
}

impl Session for TcpRrSession {
    fn given_up(&self, m: &Measured) -> Option<String> {
        self.broken.clone().or_else(|| too_many_errors(m))
    }

    fn exchange(&mut self, _seq: u64, m: &mut Measured) -> Option<Duration> {
        let stream = self.stream.as_mut()?;
        let t0 = Instant::now();
        let exchanged = stream
            .write_all(&self.out)
            .and_then(|()| stream.read_exact(&mut self.back));
        let elapsed = t0.elapsed();
        match exchanged {
            Ok(()) => Some(elapsed),
            Err(_) => {
                // The stream is out of step after a failed exchange: start over.
                m.errors += 1;
                match open(self.addr, self.timeout, self.nonce) {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        self.stream = None;
                        self.broken = Some(format!("reconnect to {} failed: {e}", self.addr));
                    }
                }
                None
            }
        }
    }
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

/// TCP connect latency to one target: a fresh socket per exchange.
pub(crate) struct TcpConnectSession {
    sockaddr: socket2::SockAddr,
    timeout: Duration,
}

impl TcpConnectSession {
    pub(crate) fn open(target: &Target, params: &Params) -> Result<Self, String> {
        let SocketAddr::V4(v4) = target.socket_addr() else {
            return Err("tcp_connect timing supports IPv4 targets only".into());
        };
        Ok(TcpConnectSession {
            sockaddr: tcp_connect::sockaddr(v4),
            timeout: params.timeout.0,
        })
    }
}

impl Session for TcpConnectSession {
    fn given_up(&self, m: &Measured) -> Option<String> {
        too_many_errors(m)
    }

    fn exchange(&mut self, _seq: u64, m: &mut Measured) -> Option<Duration> {
        let connected = ConnectSocket::new(self.timeout)
            .and_then(|socket| socket.timed_connect(&self.sockaddr));
        match connected {
            Ok(elapsed) => Some(elapsed),
            Err(e) if e.kind() == ErrorKind::Interrupted => None,
            Err(_) => {
                m.errors += 1;
                None
            }
        }
    }
}
