//! The echo responder the rtt and mtu probes measure against: UDP echo and
//! TCP echo on the same port number, served by blocking OS threads so the
//! reply path adds no scheduler hops beyond the kernel's.
//!
//! UDP datagrams are sent back whole, except MTU probes (they start with
//! [`MTU_MAGIC`]), which get only their first [`MTU_REPLY_LEN`] bytes back:
//! the mtu probe measures the forward path, and a short reply keeps the
//! reverse path's MTU out of the answer. TCP connections get every byte
//! echoed back; a connect-and-close (the tcp_connect measurement) costs the
//! responder one accept. Connections and datagrams of the throughput probe
//! (they start with its magic) go to its sink, behind the same gate and
//! limits.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::throughput::sink::{self, Sink};

/// First bytes of an mtu probe datagram.
pub const MTU_MAGIC: &[u8; 8] = b"IQMTU\0\0\0";
/// How much of an mtu probe datagram is echoed.
pub const MTU_REPLY_LEN: usize = 24;

/// Length of a run's echo nonce: the last bytes of every UDP datagram and
/// the first bytes of every TCP connection a gated responder answers.
pub const NONCE_LEN: usize = 16;
/// A gated responder waits this long for a TCP connection's nonce.
const NONCE_WAIT: Duration = Duration::from_secs(2);
/// Nonces remembered at once by a gated responder.
pub const MAX_NONCES: usize = 1024;

/// A run's echo nonce from its 32 hex digits.
pub fn parse_nonce(hex: &str) -> Option<[u8; NONCE_LEN]> {
    if hex.len() != NONCE_LEN * 2 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; NONCE_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The nonces a gated responder answers: registered by authenticated
/// callers (an agent's coordinator) for a limited time. Anything else gets
/// no reply, so the responder is no reflector and cannot be held open.
#[derive(Debug, Default)]
pub struct EchoNonces {
    table: Mutex<HashMap<[u8; NONCE_LEN], Instant>>,
}

impl EchoNonces {
    /// Answers `nonce` until `ttl` from now; false when the table is full.
    pub fn register(&self, nonce: [u8; NONCE_LEN], ttl: Duration) -> bool {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, until| *until > now);
        if table.len() >= MAX_NONCES && !table.contains_key(&nonce) {
            return false;
        }
        let until = now + ttl;
        let entry = table.entry(nonce).or_insert(until);
        *entry = (*entry).max(until);
        true
    }

    pub fn accepts(&self, nonce: &[u8]) -> bool {
        let Ok(key) = <[u8; NONCE_LEN]>::try_from(nonce) else {
            return false;
        };
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.get(&key).is_some_and(|until| *until > Instant::now())
    }
}

type Gate = Option<Arc<EchoNonces>>;

/// How often blocked threads wake to notice a stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Largest UDP datagram (and TCP read) the responder handles.
const BUFFER_BYTES: usize = 65_536;
/// Concurrent TCP connections served; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Concurrent TCP connections from one peer address, so one client holding
/// connections open cannot take every slot from the others.
pub const MAX_PER_PEER: usize = 8;
/// A TCP connection idle this long is closed (the rtt probe exchanges at
/// least once per 10 s).
const IDLE_LIMIT: Duration = Duration::from_secs(15);

/// A running responder; dropping it stops and joins every thread.
pub struct EchoResponder {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoResponder {
    /// Binds UDP and TCP on `bind` (port 0: one free port for both) and
    /// starts serving. Stops when dropped or when `cancel` fires.
    pub fn start(bind: SocketAddr, cancel: CancelToken) -> Result<EchoResponder, ProbeError> {
        Self::start_gated(bind, cancel, None)
    }

    /// As `start`, answering only exchanges that carry a nonce in `gate`
    /// (None: every exchange, for a responder on a private network).
    pub fn start_gated(
        bind: SocketAddr,
        cancel: CancelToken,
        gate: Gate,
    ) -> Result<EchoResponder, ProbeError> {
        let (listener, udp) = bind_pair(bind)?;
        let local = listener
            .local_addr()
            .map_err(|e| io_err("echo responder: local address", e))?;
        udp.set_read_timeout(Some(POLL_INTERVAL))
            .map_err(|e| io_err("echo responder: UDP timeout", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let sink = Arc::new(Sink::default());

        let (s, c, g, k) = (Arc::clone(&stop), cancel.clone(), gate.clone(), Arc::clone(&sink));
        threads.push(spawn("iq-echo-udp", move || serve_udp(udp, &s, &c, &g, &k))?);
        let (s, c) = (Arc::clone(&stop), cancel);
        match spawn("iq-echo-tcp", move || serve_tcp(listener, &s, &c, gate, sink)) {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
        Ok(EchoResponder {
            local,
            stop,
            threads,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Stops serving and waits for every thread (at most ~2 poll intervals).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for EchoResponder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn io_err(what: &str, e: std::io::Error) -> ProbeError {
    ProbeError::io(what, e)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ProbeError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| io_err("echo responder: spawning a thread", e))
}

/// TCP first (to learn the port when asked for port 0), then UDP on the same
/// number; with port 0 a taken UDP port means trying another TCP port.
fn bind_pair(bind: SocketAddr) -> Result<(TcpListener, UdpSocket), ProbeError> {
    let what = format!("echo responder: binding {bind}");
    let mut last = None;
    for _ in 0..16 {
        let listener = listen(bind).map_err(|e| io_err(&what, e))?;
        let addr = listener.local_addr().map_err(|e| io_err(&what, e))?;
        match UdpSocket::bind(addr) {
            Ok(udp) => return Ok((listener, udp)),
            Err(e) if bind.port() == 0 && e.kind() == ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(io_err(&what, e)),
        }
    }
    Err(io_err(
        &what,
        last.unwrap_or_else(|| std::io::Error::other("no free port")),
    ))
}

/// Listen backlog: a burst of measured connects (tcp_connect) must never
/// overflow the accept queue, or a dropped SYN costs a 1 s retransmit.
const BACKLOG: i32 = 4096;

/// std's TcpListener::bind (SO_REUSEADDR, close-on-exec) with a deep
/// backlog, and accept(2) giving up after [`POLL_INTERVAL`] (Linux applies
/// SO_RCVTIMEO to accept) so the serving thread notices a stop while the
/// accept itself stays blocking.
fn listen(bind: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(bind), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&bind.into())?;
    socket.listen(BACKLOG)?;
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    Ok(socket.into())
}

fn stopped(stop: &AtomicBool, cancel: &CancelToken) -> bool {
    stop.load(Ordering::Relaxed) || cancel.is_cancelled()
}

fn serve_udp(
    socket: UdpSocket,
    stop: &AtomicBool,
    cancel: &CancelToken,
    gate: &Gate,
    sink: &Sink,
) {
    let mut buf = vec![0u8; BUFFER_BYTES];
    sink.receives_udp_on_this_thread();
    // Without arrival stamps requests get no turnaround: plain echo.
    let _ = super::rx_stamp::enable(&socket);
    while !stopped(stop, cancel) {
        let (n, peer, stamp) = match super::rx_stamp::recv_from(&socket, &mut buf) {
            Ok((n, Some(peer), stamp)) => (n, peer, stamp),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // ICMP errors from earlier replies (port unreachable, ...) surface
            // here on some kernels; they concern one peer, not the responder.
            Err(_) => continue,
        };
        if let Some(gate) = gate {
            if n < NONCE_LEN || !gate.accepts(&buf[n - NONCE_LEN..n]) {
                continue;
            }
        }
        if sink.datagram(&buf[..n]) {
            continue;
        }
        let reply = if buf[..n].starts_with(MTU_MAGIC) {
            &buf[..n.min(MTU_REPLY_LEN)]
        } else {
            super::rx_stamp::write_turnaround(&mut buf[..n], stamp);
            &buf[..n]
        };
        let _ = socket.send_to(reply, peer);
    }
}

fn serve_tcp(
    listener: TcpListener,
    stop: &Arc<AtomicBool>,
    cancel: &CancelToken,
    gate: Gate,
    sink: Arc<Sink>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let per_peer: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stopped(stop, cancel) {
        connections.retain(|c| !c.is_finished());
        // Also ends every POLL_INTERVAL without a connection (WouldBlock).
        let (stream, peer) = match listener.accept() {
            Ok((s, peer)) => (s, peer.ip()),
            Err(_) => continue,
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        {
            let mut counts = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(peer).or_insert(0);
            if *count >= MAX_PER_PEER {
                continue;
            }
            *count += 1;
        }
        let release = {
            let per_peer = Arc::clone(&per_peer);
            move || {
                let mut counts = per_peer.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = counts.get_mut(&peer) {
                    *count -= 1;
                    if *count == 0 {
                        counts.remove(&peer);
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        if stream.set_read_timeout(Some(POLL_INTERVAL)).is_err() {
            release();
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (s, c, a) = (Arc::clone(stop), cancel.clone(), Arc::clone(&active));
        let (g, k) = (gate.clone(), Arc::clone(&sink));
        let release_on_fail = release.clone();
        match spawn("iq-echo-conn", move || {
            let mut stream = stream;
            if g.as_deref().is_none_or(|g| nonce_arrives(&mut stream, g)) {
                if sink::opens_with_magic(&stream) {
                    k.serve(stream, || stopped(&s, &c));
                } else {
                    serve_connection(stream, &s, &c);
                }
            }
            a.fetch_sub(1, Ordering::Relaxed);
            release();
        }) {
            Ok(t) => connections.push(t),
            Err(_) => {
                active.fetch_sub(1, Ordering::Relaxed);
                release_on_fail();
            }
        }
    }
    for c in connections {
        let _ = c.join();
    }
}

/// A gated connection's first NONCE_LEN bytes, within NONCE_WAIT: is it a
/// registered nonce?
fn nonce_arrives(stream: &mut TcpStream, gate: &EchoNonces) -> bool {
    let mut nonce = [0u8; NONCE_LEN];
    read_exact_within(stream, &mut nonce, NONCE_WAIT) && gate.accepts(&nonce)
}

/// Fills `buf` from a stream with a short read timeout, giving up after
/// `wait` or at the end of the stream; true when it is full.
pub(crate) fn read_exact_within(stream: &mut TcpStream, buf: &mut [u8], wait: Duration) -> bool {
    let mut got = 0;
    let until = Instant::now() + wait;
    while got < buf.len() && Instant::now() < until {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    got == buf.len()
}

fn serve_connection(mut stream: TcpStream, stop: &AtomicBool, cancel: &CancelToken) {
    let mut buf = vec![0u8; BUFFER_BYTES];
    let mut last_activity = Instant::now();
    while !stopped(stop, cancel) && last_activity.elapsed() < IDLE_LIMIT {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
                last_activity = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    #[test]
    fn echoes_udp_and_tcp_on_one_port_and_stops_on_drop() {
        let r = EchoResponder::start(loopback(), CancelToken::new()).unwrap();
        let addr = r.local_addr();
        assert_ne!(addr.port(), 0);

        let udp = UdpSocket::bind(loopback()).unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        udp.send_to(b"hello udp", addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello udp");

        let mut mtu = vec![7u8; 1000];
        mtu[..8].copy_from_slice(MTU_MAGIC);
        udp.send_to(&mtu, addr).unwrap();
        let mut big = [0u8; 2000];
        let (n, _) = udp.recv_from(&mut big).unwrap();
        assert_eq!(n, MTU_REPLY_LEN, "mtu probes get a short reply");

        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        tcp.write_all(b"hello tcp").unwrap();
        let mut back = [0u8; 9];
        tcp.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello tcp");
        drop(tcp);

        let started = Instant::now();
        drop(r);
        assert!(started.elapsed() < Duration::from_secs(2), "stops promptly");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
    }

    #[test]
    fn cancel_token_stops_the_threads() {
        let cancel = CancelToken::new();
        let r = EchoResponder::start(loopback(), cancel.clone()).unwrap();
        let addr = r.local_addr();
        cancel.cancel();
        std::thread::sleep(POLL_INTERVAL * 3);
        let udp = UdpSocket::bind(loopback()).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = udp.send_to(b"x", addr);
        let mut buf = [0u8; 8];
        assert!(udp.recv_from(&mut buf).is_err(), "no echo after cancel");
        drop(r);
    }

    #[test]
    fn one_peer_cannot_hold_more_than_its_share_of_connections() {
        let r = EchoResponder::start(loopback(), CancelToken::new()).unwrap();
        let addr = r.local_addr();
        let held: Vec<TcpStream> = (0..MAX_PER_PEER)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        for s in &held {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(b"k").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
        let mut extra = TcpStream::connect(addr).unwrap();
        extra.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = extra.write_all(b"x");
        let mut b = [0u8; 1];
        assert!(
            !matches!(extra.read(&mut b), Ok(1)),
            "the connection over the per-peer cap is closed unanswered"
        );
        drop(held);
        std::thread::sleep(POLL_INTERVAL * 3);
        let mut again = TcpStream::connect(addr).unwrap();
        again.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        again.write_all(b"y").unwrap();
        again.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"y", "slots come back when connections close");
    }
}
