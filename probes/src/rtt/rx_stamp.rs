//! When a UDP reply reached the socket, by the kernel's clock
//! (SO_TIMESTAMPNS), rather than when the measuring thread got to read it.
//! On a busy machine the thread that slept through a long round trip waits
//! for a CPU after the reply is in; measured on the lab's 26 ms path with
//! four busy loops on two cores, that wait alone put the p50 3 to 8 ms above
//! the path (see docs/measurement.md). The reply's arrival stamp keeps that
//! wait out of the round trip, as ping does.
// setsockopt has no std wrapper for SO_TIMESTAMPNS.
#![allow(unsafe_code)]

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{MaybeUninitSlice, MsgHdrMut, SockRef};

/// Asks the kernel to stamp every datagram this socket receives.
pub(crate) fn enable(socket: &UdpSocket) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a live c_int of the stated size on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The wall clock in ns since the epoch: the clock the kernel stamps with.
pub(crate) fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// One datagram into `buf`: its length and the kernel's arrival stamp (ns
/// since the epoch) when the kernel gave one.
pub(crate) fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, Option<u128>)> {
    let sock = SockRef::from(socket);
    // Zero-filled, so every byte is initialised whatever the kernel writes.
    let mut control = [MaybeUninit::new(0u8); CONTROL_BYTES];
    // SAFETY: u8 and MaybeUninit<u8> have the same layout; recvmsg only
    // writes initialised bytes into the buffer, which stays borrowed here.
    let data: &mut [MaybeUninit<u8>] = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    let mut bufs = [MaybeUninitSlice::new(data)];
    let mut msg = MsgHdrMut::new()
        .with_buffers(&mut bufs)
        .with_control(&mut control);
    let n = sock.recvmsg(&mut msg, 0)?;
    let filled = msg.control_len().min(CONTROL_BYTES);
    // SAFETY: every byte was initialised (zero) before the call.
    let control = control.map(|byte| unsafe { byte.assume_init() });
    Ok((n, arrival_stamp(&control[..filled])))
}

/// The round trip from a send at `sent_wall` (ns, wall clock) and
/// `elapsed` on the monotonic clock: the kernel's arrival stamp when it
/// is consistent with the monotonic reading, else the reading.
pub(crate) fn round_trip(stamp: Option<u128>, sent_wall: u128, elapsed: Duration) -> Duration {
    match stamp.and_then(|s| s.checked_sub(sent_wall)) {
        // A wall-clock step between send and reply makes the stamp useless.
        Some(ns) if ns > 0 && ns <= elapsed.as_nanos() => Duration::from_nanos(ns as u64),
        _ => elapsed,
    }
}

/// Whether a receive error only means "nothing came in time".
pub(crate) fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Room for one SCM_TIMESTAMPNS message (header and a timespec).
const CONTROL_BYTES: usize = 64;
/// struct cmsghdr: a size_t length, then level and type; messages padded
/// to size_t.
const ALIGN: usize = std::mem::size_of::<usize>();
const HEADER: usize = ALIGN + 8;

fn arrival_stamp(control: &[u8]) -> Option<u128> {
    let int_at = |at: usize| Some(i32::from_ne_bytes(control.get(at..at + 4)?.try_into().ok()?));
    let i64_at = |at: usize| Some(i64::from_ne_bytes(control.get(at..at + 8)?.try_into().ok()?));
    let mut offset = 0;
    while let Some(len) = control
        .get(offset..offset + ALIGN)
        .and_then(|b| b.try_into().ok())
        .map(usize::from_ne_bytes)
    {
        if len < HEADER {
            return None;
        }
        let data = offset + HEADER.next_multiple_of(ALIGN);
        if int_at(offset + ALIGN)? == libc::SOL_SOCKET
            && int_at(offset + ALIGN + 4)? == libc::SO_TIMESTAMPNS
        {
            let (sec, nsec) = (i64_at(data)?, i64_at(data + 8)?);
            return Some(u128::try_from(sec).ok()? * 1_000_000_000 + u128::try_from(nsec).ok()?);
        }
        offset += len.next_multiple_of(ALIGN);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_the_kernels_arrival_stamp() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        enable(&server).unwrap();
        // The kernel turns arrival stamping on for the whole stack lazily:
        // the first datagrams after the first socket asked may go without.
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            client.send(b"warm").unwrap();
            recv(&server, &mut buf).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = wall_ns();
        client.send(b"ping").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (n, stamp) = recv(&server, &mut buf).unwrap();
        let after = wall_ns();
        assert_eq!(&buf[..n], b"ping");
        let stamp = stamp.expect("a kernel timestamp");
        assert!(stamp >= before && stamp <= after, "{before} <= {stamp} <= {after}");
        // Read 20 ms after it arrived: the stamp is from the arrival.
        assert!(after - stamp >= 19_000_000, "{}", after - stamp);
    }

    #[test]
    fn an_inconsistent_stamp_falls_back_to_the_monotonic_reading() {
        let elapsed = Duration::from_micros(500);
        assert_eq!(round_trip(Some(1_300), 1_000, elapsed), Duration::from_nanos(300));
        assert_eq!(round_trip(Some(900), 1_000, elapsed), elapsed, "before the send");
        assert_eq!(round_trip(Some(10_000_000), 1_000, elapsed), elapsed, "after the reading");
        assert_eq!(round_trip(None, 1_000, elapsed), elapsed);
    }
}
