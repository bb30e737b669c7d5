//! The kernel's view of a TCP connection (TCP_INFO): bytes the peer has
//! acknowledged, retransmitted segments and the smoothed round-trip time.

// getsockopt(TCP_INFO) has no std or socket2 wrapper.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub bytes_acked: u64,
    pub total_retrans: u32,
    /// Smoothed RTT, µs.
    pub rtt_us: u32,
    pub min_rtt_us: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    pub snd_mss: u32,
}

pub fn read(socket: &impl AsRawFd) -> std::io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain integers; all-zero is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd, a pointer to a tcp_info this frame owns and its
    // size; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpInfo {
        bytes_acked: info.tcpi_bytes_acked,
        total_retrans: info.tcpi_total_retrans,
        rtt_us: info.tcpi_rtt,
        min_rtt_us: info.tcpi_min_rtt,
        unacked: info.tcpi_unacked,
        snd_mss: info.tcpi_snd_mss,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn acknowledged_bytes_are_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 10_000]).unwrap();
        let mut got = vec![0u8; 10_000];
        server.read_exact(&mut got).unwrap();
        let mut info = super::read(&client).unwrap();
        for _ in 0..100 {
            if info.bytes_acked >= 10_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            info = super::read(&client).unwrap();
        }
        // The SYN counts as one acknowledged byte.
        assert!((10_000..=10_001).contains(&info.bytes_acked), "{info:?}");
        assert!(info.snd_mss > 0);
    }
}
