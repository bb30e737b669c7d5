//! The private network the probe measures in: a `node` namespace that holds
//! the service rules and opens the connections, and an `ep` namespace whose
//! addresses are the endpoints, joined by one veth pair. The veth is created
//! inside the node namespace with its peer placed straight into the endpoint
//! namespace, so no interface, address, route or rule ever exists in the
//! host namespace. Everything is removed by Drop, on every exit path.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::layout::{self, BACKEND_IP, CLIENT_IP, LINK_PREFIX_LEN, SERVICE_CIDR};
use super::servers::EndpointServers;
use crate::error::ProbeError;
use crate::system::tools;

const NETNS_DIR: &str = "/run/netns";

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(name: &str) -> Result<Self, ProbeError> {
        ip(&["netns", "add", name])?;
        Ok(Netns {
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// The namespace file, for setns().
    pub fn open(&self) -> Result<File, ProbeError> {
        let path = self.path();
        File::open(&path).map_err(|e| ProbeError::io(path, e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            tracing::warn!("could not delete network namespace {}: {e}", self.name);
        }
    }
}

/// Moves the calling thread (only it: setns is per thread) into `ns`.
/// Callers are dedicated threads that end when their work is done.
pub fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace fd we own; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What a tool run inside a namespace produced, and how long it took from
/// spawn to exit (the programming time kube-proxy's sync pays).
#[derive(Debug)]
pub struct ToolRun {
    pub stdout: String,
    pub elapsed: Duration,
}

/// Runs `program args` with `stdin` inside `ns`. The child joins the
/// namespace between fork and exec (what `nsenter --net` does); the
/// namespace's file descriptor is opened before the fork. Unlike `ip netns
/// exec` this adds no mount-namespace setup to the timed programming run.
pub fn run_in(
    ns: &Netns,
    program: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ToolRun, ProbeError> {
    let ns_file = ns.open()?;
    let ns_fd = ns_file.as_raw_fd();
    let command_line = format!(
        "{} {} (in {})",
        program.display(),
        args.join(" "),
        ns.name()
    );
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only the async-signal-safe setns syscall runs in the child;
    // if it fails the child exits before exec, so nothing runs in the host
    // namespace.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| ProbeError::Command {
        command: command_line.clone(),
        detail: e.to_string(),
    })?;
    drop(ns_file);
    let child_stdin = child.stdin.take();
    // Feed stdin from a second thread so a chatty child cannot deadlock us.
    let (output, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || match (child_stdin, stdin) {
            (Some(mut pipe), Some(bytes)) => pipe.write_all(bytes),
            _ => Ok(()),
        });
        let output = child.wait_with_output();
        (output, writer.join())
    });
    let elapsed = started.elapsed();
    let output = output.map_err(|e| ProbeError::Command {
        command: command_line.clone(),
        detail: e.to_string(),
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(ProbeError::Command {
            command: command_line,
            detail: format!("{}: {}", output.status, first_lines(&stderr, 5)),
        });
    }
    if let Ok(Err(e)) | Err(e) = written.map_err(|_| std::io::Error::other("stdin writer panicked"))
    {
        return Err(ProbeError::Command {
            command: command_line,
            detail: format!("writing its input: {e}"),
        });
    }
    Ok(ToolRun {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    })
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" | ")
}

/// `ip ARGS` in the host namespace: only `netns add/delete` and `-n NS ...`
/// forms are used, which act inside the named namespace.
fn ip(args: &[&str]) -> Result<(), ProbeError> {
    let program = tools::which("ip").ok_or_else(|| ProbeError::Command {
        command: "ip".into(),
        detail: "iproute2's `ip` is not installed".into(),
    })?;
    let output = Command::new(&program)
        .args(args)
        .output()
        .map_err(|e| ProbeError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ProbeError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: first_lines(&String::from_utf8_lossy(&output.stderr), 3),
        })
    }
}

static SANDBOX_COUNTER: AtomicU32 = AtomicU32::new(0);

/// `iq-<pid><counter>-` (hex pid, `s`, counter): unique among concurrent
/// tests in one process and among processes.
fn unique_prefix() -> String {
    let n = SANDBOX_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("iq-{:x}s{n}", std::process::id())
}

/// Node and endpoint namespaces, the veth between them, and the endpoint
/// servers. Field order is drop order: servers stop before the namespaces go.
pub struct Sandbox {
    _servers: EndpointServers,
    pub node: Netns,
    _endpoints_ns: Netns,
}

impl Sandbox {
    pub fn create(endpoints: usize) -> Result<Self, ProbeError> {
        let prefix = unique_prefix();
        let node = Netns::create(&format!("{prefix}-node"))?;
        let endpoints_ns = Netns::create(&format!("{prefix}-ep"))?;
        let (n, e) = (node.name().to_string(), endpoints_ns.name().to_string());
        let link = |ip_addr: std::net::Ipv4Addr| format!("{ip_addr}/{LINK_PREFIX_LEN}");
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        ip(&["-n", &e, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &n, "link", "add", "iq-node", "type", "veth", "peer", "name", "iq-ep", "netns",
            &e,
        ])?;
        ip(&["-n", &n, "addr", "add", &link(CLIENT_IP), "dev", "iq-node"])?;
        ip(&["-n", &e, "addr", "add", &link(BACKEND_IP), "dev", "iq-ep"])?;
        for ep in layout::endpoints(endpoints) {
            ip(&["-n", &e, "addr", "add", &link(*ep.ip()), "dev", "iq-ep"])?;
        }
        ip(&["-n", &n, "link", "set", "iq-node", "up"])?;
        ip(&["-n", &e, "link", "set", "iq-ep", "up"])?;
        // Packets to a VIP leave towards the endpoint side; DNAT in OUTPUT
        // rewrites them to an endpoint on the link before they go.
        let via = BACKEND_IP.to_string();
        ip(&["-n", &n, "route", "add", SERVICE_CIDR, "via", &via])?;
        let servers = EndpointServers::start(&endpoints_ns, &layout::endpoints(endpoints))?;
        Ok(Sandbox {
            _servers: servers,
            node,
            _endpoints_ns: endpoints_ns,
        })
    }
}

/// Namespaces under /run/netns whose names start with `prefix` (tests use it
/// to prove nothing is left behind).
#[cfg(test)]
pub fn namespaces_named(prefix: &str) -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// This process's sandbox name prefix, for leak checks in tests.
#[cfg(test)]
pub fn process_prefix() -> String {
    format!("iq-{:x}s", std::process::id())
}
