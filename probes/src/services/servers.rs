//! The endpoints: one listening socket per endpoint address, inside the
//! endpoint namespace, drained by one dedicated thread. Each accepted connection is
//! answered with one byte, the endpoint's index, so a client can tell which
//! endpoint DNAT chose. Stopped (flag + join) on drop.

use std::net::{SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Socket, Type};

use crate::error::ProbeError;
use crate::system::netns::{self, Netns};

/// How often the accept queues are drained. The thread sleeps instead of
/// waiting in poll()/accept(): a waiter on the listening socket would be
/// woken (often by an IPI to the other vCPU) from inside the client's
/// connect(), adding the endpoint's wake-up, not the rules, to every sample.
/// A real endpoint pod sits on another node, outside that path.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);
/// Accept queue length; at ~25 us per connect a 2 ms drain interval needs ~100.
const BACKLOG: i32 = 4096;

pub struct EndpointServers {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EndpointServers {
    /// Binds every endpoint in `ns` and starts answering; returns once all
    /// listeners are bound (or the first error).
    pub fn start(ns: &Netns, endpoints: &[SocketAddrV4]) -> Result<Self, ProbeError> {
        let ns_name = ns.name().to_string();
        let endpoints = endpoints.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("iq-svc-endpoints".into())
            .spawn(move || {
                if let Err(e) = netns::enter(&ns_name) {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
                let mut listeners = Vec::with_capacity(endpoints.len());
                for ep in &endpoints {
                    match listen(*ep) {
                        Ok(l) => listeners.push(l),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("listen on {ep} in {ns_name}: {e}")));
                            return;
                        }
                    }
                }
                let _ = ready_tx.send(Ok(()));
                serve(&listeners, &stop_flag);
            })
            .map_err(|e| ProbeError::Failed {
                probe: super::NAME.into(),
                message: format!("cannot start the endpoint thread: {e}"),
            })?;
        let servers = EndpointServers {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(servers),
            Ok(Err(message)) => Err(ProbeError::Failed {
                probe: super::NAME.into(),
                message,
            }),
            Err(_) => Err(ProbeError::Failed {
                probe: super::NAME.into(),
                message: "the endpoint thread ended before listening".into(),
            }),
        }
    }
}

/// A non-blocking listener on `addr` with room in its accept queue for
/// every connection made between two drains (std's listen backlog is 128).
/// SO_REUSEADDR as std's TcpListener::bind sets it.
fn listen(addr: SocketAddrV4) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn serve(listeners: &[TcpListener], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for (index, listener) in listeners.iter().enumerate() {
            // A connection the client already reset may vanish before
            // accept, which is fine.
            while let Ok((mut stream, _)) = listener.accept() {
                use std::io::Write;
                let _ = stream.write(&[index as u8]);
            }
        }
        std::thread::sleep(DRAIN_INTERVAL);
    }
}

impl Drop for EndpointServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
