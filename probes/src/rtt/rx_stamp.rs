//! When a UDP datagram reached the socket, by the kernel's clock
//! (SO_TIMESTAMPNS), rather than when a thread got to read it. On a busy
//! machine a thread that slept through a long round trip waits for a CPU
//! after the datagram is in: on the lab's 26 ms path with four busy loops on
//! two cores, the measuring thread's and the responder's waits put the p50
//! at 30 to 43 ms. The measuring side times a reply by its arrival stamp (as
//! ping does); the responder writes how long it held a request, from its
//! arrival stamp to its reply, into the reply (as a TWAMP reflector does),
//! and the measuring side takes that off. Measured: docs/measurement.md.
// setsockopt has no std wrapper for SO_TIMESTAMPNS.
#![allow(unsafe_code)]

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{MaybeUninitSlice, MsgHdrMut, SockAddr, SockAddrStorage, SockRef};

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
    recv_from(socket, buf).map(|(n, _, stamp)| (n, stamp))
}

/// As `recv`, with the sender's address (None for an address that is not
/// IP).
pub(crate) fn recv_from(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SocketAddr>, Option<u128>)> {
    let sock = SockRef::from(socket);
    // SAFETY: zeroed storage is a valid (unspecified) address of full size.
    let mut from = unsafe {
        SockAddr::new(
            SockAddrStorage::zeroed(),
            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        )
    };
    // Zero-filled, so every byte is initialised whatever the kernel writes.
    let mut control = [MaybeUninit::new(0u8); CONTROL_BYTES];
    // SAFETY: u8 and MaybeUninit<u8> have the same layout; recvmsg only
    // writes initialised bytes into the buffer, which stays borrowed here.
    let data: &mut [MaybeUninit<u8>] = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    let mut bufs = [MaybeUninitSlice::new(data)];
    let mut msg = MsgHdrMut::new()
        .with_addr(&mut from)
        .with_buffers(&mut bufs)
        .with_control(&mut control);
    let n = sock.recvmsg(&mut msg, 0)?;
    let filled = msg.control_len().min(CONTROL_BYTES);
    // SAFETY: every byte was initialised (zero) before the call.
    let control = control.map(|byte| unsafe { byte.assume_init() });
    Ok((n, from.as_socket(), arrival_stamp(&control[..filled])))
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

/// A request that carries this at `TURN_AT` asks the responder to write how
/// long it held the request (kernel arrival to its reply, ns, u64 LE) right
/// after it, as a TWAMP reflector reports its timestamps: the responder's
/// wait for a CPU is the responder's, not the path's.
pub const TURN_MAGIC: &[u8; 8] = b"IQTURN01";
pub const TURN_AT: usize = 16;
/// Bytes the turnaround field needs from the start of the datagram.
pub const TURN_END: usize = TURN_AT + 16;

/// Responder side: writes the turnaround into a request that asks for it.
pub(crate) fn write_turnaround(datagram: &mut [u8], stamp: Option<u128>) {
    let (Some(stamp), Some(field)) = (stamp, datagram.get_mut(TURN_AT..TURN_END)) else {
        return;
    };
    if &field[..8] != TURN_MAGIC {
        return;
    }
    let held = wall_ns().saturating_sub(stamp).min(u128::from(u64::MAX)) as u64;
    field[8..].copy_from_slice(&held.to_le_bytes());
}

/// Measuring side: the responder's turnaround in a reply, 0 when it wrote
/// none (a responder that only echoes sends the zeros back).
pub(crate) fn turnaround(reply: &[u8]) -> Duration {
    match reply.get(TURN_AT..TURN_END) {
        Some(field) if &field[..8] == TURN_MAGIC => {
            let mut ns = [0u8; 8];
            ns.copy_from_slice(&field[8..]);
            Duration::from_nanos(u64::from_le_bytes(ns))
        }
        _ => Duration::ZERO,
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
    fn the_turnaround_travels_only_when_asked_for() {
        let mut asked = vec![0u8; 64];
        asked[TURN_AT..TURN_AT + 8].copy_from_slice(TURN_MAGIC);
        write_turnaround(&mut asked, Some(wall_ns() - 3_000_000));
        let held = turnaround(&asked);
        assert!(held >= Duration::from_millis(3) && held < Duration::from_secs(1), "{held:?}");
        let mut plain = vec![0u8; 64];
        write_turnaround(&mut plain, Some(wall_ns() - 3_000_000));
        assert_eq!(plain, vec![0u8; 64]);
        assert_eq!(turnaround(&plain), Duration::ZERO);
        assert_eq!(turnaround(&asked[..20]), Duration::ZERO);
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
