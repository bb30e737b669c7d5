//! One timed TCP handshake, shared by the rtt probe (`tcp_connect`) and the
//! services probe (first-packet latency): a blocking IPv4 socket made before
//! the clock starts, the connect(2) syscall alone inside the timed span, and
//! a close with RST (SO_LINGER 0) so that a thousand measured connects leave
//! no TIME_WAIT behind.

#![forbid(unsafe_code)]

use std::io::Read;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// The address connect(2) takes, built once per target outside the loop.
pub fn sockaddr(target: SocketAddrV4) -> SockAddr {
    SockAddr::from(target)
}

/// A blocking TCP socket whose connect and reads give up after `timeout`
/// (Linux applies SO_SNDTIMEO to connect), closed on drop.
pub struct ConnectSocket(Socket);

impl ConnectSocket {
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        // socket2 opens it close-on-exec, as std does.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_write_timeout(Some(timeout))?;
        socket.set_read_timeout(Some(timeout))?;
        Ok(ConnectSocket(socket))
    }

    /// The connect(2) syscall alone: socket2 adds nothing around it.
    pub fn connect(&self, addr: &SockAddr) -> std::io::Result<()> {
        self.0.connect(addr)
    }

    /// One timed handshake, then the RST close. Making the socket and
    /// closing it are outside the timed span; inside it is only connect(2).
    pub fn timed_connect(self, addr: &SockAddr) -> std::io::Result<Duration> {
        let started = Instant::now();
        let connected = self.connect(addr);
        let elapsed = started.elapsed();
        connected?;
        self.abort();
        Ok(elapsed)
    }

    /// Reads one byte (the services backends' endpoint identity).
    pub fn read_byte(&self) -> std::io::Result<u8> {
        let mut byte = [0u8; 1];
        match (&self.0).read(&mut byte)? {
            1 => Ok(byte[0]),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without an identity byte",
            )),
        }
    }

    /// Closes with RST instead of FIN: no TIME_WAIT.
    pub fn abort(self) {
        let _ = self.0.set_linger(Some(Duration::ZERO));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn times_a_loopback_handshake_and_reports_a_refused_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let std::net::SocketAddr::V4(open) = listener.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let addr = sockaddr(open);
        let timed = || ConnectSocket::new(Duration::from_secs(1))?.timed_connect(&addr);
        let took = timed().unwrap();
        assert!(
            took > Duration::ZERO && took < Duration::from_secs(1),
            "{took:?}"
        );
        drop(listener);
        let refused = timed().unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
