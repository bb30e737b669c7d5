//! The endpoints: one listening socket per endpoint address, inside the
//! endpoint namespace, on one dedicated thread. Each accepted connection is
//! answered with one byte, the endpoint's index, so a client can tell which
//! endpoint DNAT chose. Stopped (flag + join) on drop.

use std::net::{SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::sandbox::{enter, Netns};
use crate::error::ProbeError;

/// How often the accept loop looks at its stop flag.
const POLL_MS: i32 = 50;

pub struct EndpointServers {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EndpointServers {
    /// Binds every endpoint in `ns` and starts answering; returns once all
    /// listeners are bound (or the first error).
    pub fn start(ns: &Netns, endpoints: &[SocketAddrV4]) -> Result<Self, ProbeError> {
        let ns_file = ns.open()?;
        let ns_name = ns.name().to_string();
        let endpoints = endpoints.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("iq-svc-endpoints".into())
            .spawn(move || {
                if let Err(e) = enter(&ns_file) {
                    let _ = ready_tx.send(Err(format!("setns into {ns_name}: {e}")));
                    return;
                }
                drop(ns_file);
                let mut listeners = Vec::with_capacity(endpoints.len());
                for ep in &endpoints {
                    match TcpListener::bind(ep).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
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

fn serve(listeners: &[TcpListener], stop: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: fds points at fds.len() initialised pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
        if ready <= 0 {
            continue;
        }
        for (index, (pfd, listener)) in fds.iter_mut().zip(listeners).enumerate() {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            pfd.revents = 0;
            // Drain the backlog; a connection the client already reset may
            // vanish before accept, which is fine.
            while let Ok((mut stream, _)) = listener.accept() {
                use std::io::Write;
                let _ = stream.write(&[index as u8]);
            }
        }
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
