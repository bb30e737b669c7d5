//! One timed TCP handshake, shared by the rtt probe (`tcp_connect`) and the
//! services probe (first-packet latency): a blocking IPv4 socket made before
//! the clock starts, the connect(2) syscall alone inside the timed span, and
//! a close with RST (SO_LINGER 0) so that a thousand measured connects leave
//! no TIME_WAIT behind.

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The sockaddr connect(2) takes, built once per target outside the loop.
pub fn sockaddr(target: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: target.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*target.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A blocking TCP socket whose connect and reads give up after `timeout`
/// (Linux applies SO_SNDTIMEO to connect), closed on drop.
pub struct ConnectSocket(OwnedFd);

impl ConnectSocket {
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let socket = ConnectSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        socket.set(libc::SO_SNDTIMEO, &tv)?;
        socket.set(libc::SO_RCVTIMEO, &tv)?;
        Ok(socket)
    }

    fn set<T>(&self, option: libc::c_int, value: &T) -> std::io::Result<()> {
        // SAFETY: value points at a live T of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub fn connect(&self, addr: &libc::sockaddr_in) -> std::io::Result<()> {
        // SAFETY: addr is a valid sockaddr_in of the length passed.
        let rc = unsafe {
            libc::connect(
                self.0.as_raw_fd(),
                (addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// One timed handshake, then the RST close. Making the socket and
    /// closing it are outside the timed span; inside it is only connect(2).
    pub fn timed_connect(self, addr: &libc::sockaddr_in) -> std::io::Result<Duration> {
        let started = Instant::now();
        let connected = self.connect(addr);
        let elapsed = started.elapsed();
        connected?;
        self.abort();
        Ok(elapsed)
    }

    /// Reads one byte (the services backends' endpoint identity).
    pub fn read_byte(&self) -> std::io::Result<u8> {
        let mut byte = 0u8;
        // SAFETY: reading one byte into a live u8.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, 0) };
        match n {
            1 => Ok(byte),
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without an identity byte",
            )),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// Closes with RST instead of FIN: no TIME_WAIT.
    pub fn abort(self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let _ = self.set(libc::SO_LINGER, &linger);
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
