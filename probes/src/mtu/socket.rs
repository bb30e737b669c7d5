//! A connected UDP socket that sends with DF set and reports ICMP errors:
//! IP_MTU_DISCOVER = IP_PMTUDISC_PROBE (DF on every datagram, and the kernel's
//! cached path MTU ignored so every size is really tried), IP_RECVERR (ICMP
//! errors queued with their details), IP_MTU (the kernel's path MTU).

// IP_MTU_DISCOVER, IP_MTU, getifaddrs and SIOCGIFMTU have no std or socket2 wrapper.
#![allow(unsafe_code)]

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{MaybeUninitSlice, MsgHdrMut, SockRef};

/// An ICMP "fragmentation needed" that came back, with the MTU it named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragNeeded {
    pub mtu: u32,
}

pub struct DfSocket {
    socket: UdpSocket,
}

impl DfSocket {
    pub fn connect(target: SocketAddr, timeout: Duration) -> std::io::Result<DfSocket> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect(target)?;
        socket.set_read_timeout(Some(timeout))?;
        let s = DfSocket { socket };
        s.set_int(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )?;
        s.set_int(libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
        Ok(s)
    }

    pub fn local_ip(&self) -> Option<IpAddr> {
        self.socket.local_addr().ok().map(|a| a.ip())
    }

    /// The kernel's path MTU for the connected route (IP_MTU).
    pub fn path_mtu(&self) -> Option<u32> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are live and of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        (rc == 0 && value > 0).then_some(value as u32)
    }

    pub fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        self.socket.send(datagram).map(|_| ())
    }

    /// One datagram, or None on timeout. A pending ICMP error surfaces here
    /// as an Err (EMSGSIZE, ECONNREFUSED, ...).
    pub fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the socket's error queue; returns the ICMP fragmentation-needed
    /// reports in it (local EMSGSIZE reports are not ICMP and are skipped).
    pub fn drain_errors(&self) -> Vec<FragNeeded> {
        let socket = SockRef::from(&self.socket);
        let mut found = Vec::new();
        for _ in 0..64 {
            let mut data = [MaybeUninit::<u8>::uninit(); 256];
            // Zero-filled, so every byte is initialised whatever the kernel
            // writes into it.
            let mut control = [MaybeUninit::new(0u8); CONTROL_BYTES];
            let mut bufs = [MaybeUninitSlice::new(&mut data)];
            let mut msg = MsgHdrMut::new()
                .with_buffers(&mut bufs)
                .with_control(&mut control);
            let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
            if socket.recvmsg(&mut msg, flags).is_err() {
                break;
            }
            let filled = msg.control_len().min(CONTROL_BYTES);
            // SAFETY: every byte was initialised (zero) before the call, and
            // recvmsg only ever stores initialised bytes over them.
            let control = control.map(|byte| unsafe { byte.assume_init() });
            found.extend(frag_needed_reports(&control[..filled]));
        }
        found
    }

    fn set_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> std::io::Result<()> {
        // SAFETY: a live c_int of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Room for the control messages of one error-queue read (one
/// IP_RECVERR: header, sock_extended_err and the offender's address).
const CONTROL_BYTES: usize = 512;
/// The kernel's control message layout (struct cmsghdr, CMSG_ALIGN):
/// a size_t length, then level and type, each message padded to size_t.
const CMSG_ALIGN: usize = std::mem::size_of::<usize>();
const CMSG_HEADER: usize = CMSG_ALIGN + 8;

const fn cmsg_align(len: usize) -> usize {
    (len + CMSG_ALIGN - 1) & !(CMSG_ALIGN - 1)
}

/// The ICMP "fragmentation needed" reports among the control messages of
/// one error-queue read. Each IP_RECVERR message carries a
/// sock_extended_err: u32 errno, u8 origin, u8 type, u8 code, u8 pad,
/// u32 info (the MTU for frag-needed), u32 data.
fn frag_needed_reports(control: &[u8]) -> Vec<FragNeeded> {
    let int_at = |at: usize| -> Option<i32> {
        Some(i32::from_ne_bytes(
            control.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let mut found = Vec::new();
    let mut offset = 0;
    while let Some(header) = control.get(offset..offset + CMSG_HEADER) {
        let Ok(len_bytes) = header[..CMSG_ALIGN].try_into() else {
            break;
        };
        let len = usize::from_ne_bytes(len_bytes);
        let (Some(level), Some(kind)) =
            (int_at(offset + CMSG_ALIGN), int_at(offset + CMSG_ALIGN + 4))
        else {
            break;
        };
        // Also ends the walk on a length shorter than the header.
        let Some(data) = control.get(offset + cmsg_align(CMSG_HEADER)..offset + len) else {
            break;
        };
        if level == libc::IPPROTO_IP && kind == libc::IP_RECVERR && data.len() >= 12 {
            let (origin, icmp_type, icmp_code) = (data[4], data[5], data[6]);
            let frag_needed = origin == libc::SO_EE_ORIGIN_ICMP && icmp_type == 3 && icmp_code == 4;
            if frag_needed {
                let info = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                found.push(FragNeeded { mtu: info });
            }
        }
        offset += cmsg_align(len);
    }
    found
}

/// The interface that holds `ip` and its MTU, read in the calling thread's
/// network namespace (getifaddrs over netlink, SIOCGIFMTU), not from /sys,
/// which shows the namespace that mounted it.
pub fn interface_of(ip: IpAddr) -> Option<(String, u32)> {
    let IpAddr::V4(v4) = ip else { return None };
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut name = None;
    let mut cur = head;
    // SAFETY: walking the list getifaddrs returned, until null.
    unsafe {
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                let sin = &*(a as *const libc::sockaddr_in);
                if u32::from_be(sin.sin_addr.s_addr) == u32::from(v4) {
                    name = Some(
                        std::ffi::CStr::from_ptr((*cur).ifa_name)
                            .to_string_lossy()
                            .into_owned(),
                    );
                    break;
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    let name = name?;
    let mtu = interface_mtu(&name)?;
    Some((name, mtu))
}

fn interface_mtu(name: &str) -> Option<u32> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // SAFETY: all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU with a valid ifreq naming an interface.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the kernel filled the mtu member of the union.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One control message as the kernel lays it out, padded.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let len = cmsg_align(CMSG_HEADER) + data.len();
        let mut bytes = len.to_ne_bytes().to_vec();
        bytes.extend(level.to_ne_bytes());
        bytes.extend(kind.to_ne_bytes());
        bytes.resize(cmsg_align(CMSG_HEADER), 0);
        bytes.extend(data);
        bytes.resize(cmsg_align(len), 0);
        bytes
    }

    fn extended_err(origin: u8, icmp_type: u8, icmp_code: u8, info: u32) -> Vec<u8> {
        let mut e = (libc::EMSGSIZE as u32).to_ne_bytes().to_vec();
        e.extend([origin, icmp_type, icmp_code, 0]);
        e.extend(info.to_ne_bytes());
        e.extend(0u32.to_ne_bytes());
        // The offender's address (a sockaddr_in) follows.
        e.extend([0u8; 16]);
        e
    }

    #[test]
    fn the_header_is_the_kernels_cmsghdr() {
        assert_eq!(CMSG_HEADER, std::mem::size_of::<libc::cmsghdr>());
    }

    #[test]
    fn finds_frag_needed_among_other_control_messages() {
        let mut control = cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &[1, 2, 3]);
        let icmp = libc::SO_EE_ORIGIN_ICMP;
        control.extend(cmsg(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            &extended_err(icmp, 3, 4, 1400),
        ));
        // Port unreachable and a local EMSGSIZE are not frag-needed.
        control.extend(cmsg(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            &extended_err(icmp, 3, 3, 0),
        ));
        let local = libc::SO_EE_ORIGIN_LOCAL;
        control.extend(cmsg(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            &extended_err(local, 0, 0, 1500),
        ));
        assert_eq!(frag_needed_reports(&control), [FragNeeded { mtu: 1400 }]);
    }

    #[test]
    fn a_truncated_or_corrupt_buffer_ends_the_walk() {
        let icmp = libc::SO_EE_ORIGIN_ICMP;
        let whole = cmsg(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            &extended_err(icmp, 3, 4, 1400),
        );
        assert!(frag_needed_reports(&whole[..whole.len() - 20]).is_empty());
        assert!(frag_needed_reports(&whole[..CMSG_HEADER - 1]).is_empty());
        let mut zero_len = whole.clone();
        zero_len[..CMSG_ALIGN].fill(0);
        assert!(frag_needed_reports(&zero_len).is_empty());
        assert!(frag_needed_reports(&[]).is_empty());
    }
}
