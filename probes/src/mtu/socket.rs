//! A connected UDP socket that sends with DF set and reports ICMP errors:
//! IP_MTU_DISCOVER = IP_PMTUDISC_PROBE (DF on every datagram, and the kernel's
//! cached path MTU ignored so every size is really tried), IP_RECVERR (ICMP
//! errors queued with their details), IP_MTU (the kernel's path MTU).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

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
        let mut found = Vec::new();
        for _ in 0..64 {
            let mut data = [0u8; 256];
            let mut control = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            // SAFETY: all-zero msghdr is valid; pointers set below stay live.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: msg describes live buffers.
            let rc = unsafe {
                libc::recvmsg(
                    self.socket.as_raw_fd(),
                    &mut msg,
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                break;
            }
            // SAFETY: walking the control buffer the kernel filled, with the
            // CMSG_* helpers and within msg_controllen.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::IPPROTO_IP
                        && (*cmsg).cmsg_type == libc::IP_RECVERR
                    {
                        let ee = std::ptr::read_unaligned(
                            libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err
                        );
                        let frag_needed = ee.ee_origin == libc::SO_EE_ORIGIN_ICMP
                            && ee.ee_type == 3
                            && ee.ee_code == 4;
                        if frag_needed {
                            found.push(FragNeeded { mtu: ee.ee_info });
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
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
