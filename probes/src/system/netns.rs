//! Named network namespaces, as `ip netns add` makes them (a bind mount
//! under /run/netns): creating and deleting them, entering one on a thread,
//! running a tool inside one, and finding the project's namespaces by name.
//!
//! Every namespace the project makes is named `iq-<id>-<role>`, where the
//! id is unique to one owner (a lab, a services sandbox), so an owner's
//! namespaces, including those a crash left behind, are found by prefix and
//! nobody else's are ever touched.
//!
//! Nothing here changes the host namespace: `ip` runs as `ip -n NS`, a tool
//! joins its namespace between fork and exec, and a thread that enters a
//! namespace is a thread made for that purpose.

// setns has no std wrapper.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tools;

/// Where `ip netns add` puts its namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// How many lines of a failed command's input and error output its error
/// shows: enough to recognise the batch, short enough to read.
const SHOWN_LINES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name} ({}): {source}", path.display())]
    Open {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {name} (needs CAP_SYS_ADMIN): {source}")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tool}` is not installed (looked on PATH and in the sbin directories)")]
    ToolMissing { tool: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("thread {thread} for network namespace {name}: {detail}")]
    Thread {
        name: String,
        thread: String,
        detail: String,
    },
}

/// `iq-<id>-<role>`: the name of the namespace playing `role` for owner `id`.
pub fn name(id: &str, role: &str) -> String {
    format!("{}{role}", prefix(id))
}

/// `iq-<id>-`: what every namespace of owner `id` starts with.
pub fn prefix(id: &str) -> String {
    format!("iq-{id}-")
}

/// Whether `ns` is one of owner `id`'s namespaces.
pub fn belongs_to(ns: &str, id: &str) -> bool {
    ns.strip_prefix(&prefix(id))
        .is_some_and(|role| !role.is_empty())
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path_of(name).exists()
}

/// The namespaces under /run/netns whose names start with `prefix`, sorted:
/// how leftovers of a crashed owner are found, and how tests prove that
/// nothing is left behind.
pub fn names_with_prefix(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Creates namespace `name` with its loopback up (every user of a fresh
/// namespace wants it, and a down `lo` fails in confusing ways). If `lo`
/// cannot be brought up the namespace is deleted again.
pub fn add(name: &str) -> Result<(), NetnsError> {
    run_ip(&["netns", "add", name])?;
    ip(name, &["link", "set", "lo", "up"]).inspect_err(|_| {
        if let Err(e) = delete(name) {
            tracing::warn!("could not delete network namespace {name}: {e}");
        }
    })
}

/// Deletes namespace `name` with every device, address and route in it.
/// Returns whether it existed: deleting a missing one is not an error, so
/// cleanup can be repeated.
pub fn delete(name: &str) -> Result<bool, NetnsError> {
    if !exists(name) {
        return Ok(false);
    }
    run_ip(&["netns", "delete", name])?;
    Ok(true)
}

/// A namespace this process created, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        add(name)?;
        Ok(Netns {
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program args` inside this namespace; see [`run_in`].
    pub fn run(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<ToolRun, NetnsError> {
        run_in(&self.name, program, args, stdin)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = delete(&self.name) {
            tracing::warn!("could not delete network namespace {}: {e}", self.name);
        }
    }
}

/// An open namespace file: what setns(2) takes.
struct NetnsFile {
    name: String,
    file: File,
}

impl NetnsFile {
    fn open(name: &str) -> Result<Self, NetnsError> {
        let path = path_of(name);
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            name: name.to_string(),
            path,
            source,
        })?;
        Ok(NetnsFile {
            name: name.to_string(),
            file,
        })
    }

    fn enter(&self) -> Result<(), NetnsError> {
        setns_net(self.file.as_raw_fd()).map_err(|source| NetnsError::Enter {
            name: self.name.clone(),
            source,
        })
    }
}

/// setns(2) into the network namespace `fd` refers to. Only the calling
/// thread moves (setns is per thread); threads it spawns afterwards start
/// in the new namespace.
fn setns_net(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: setns only reads its two integer arguments; a bad fd is
    // reported as EBADF/EINVAL, never undefined behaviour.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Moves the calling thread into namespace `name`. Callers are threads made
/// for the purpose (a job, a delay line, a server): a pooled or shared
/// thread must never change namespace.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    NetnsFile::open(name)?.enter()
}

/// Runs `work` on a new thread named `thread` inside namespace `name` and
/// returns what it returned; the caller's thread stays where it is.
pub fn run_on_thread<T: Send>(
    name: &str,
    thread: &str,
    work: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let ns = NetnsFile::open(name)?;
    let thread_error = |detail: String| NetnsError::Thread {
        name: name.to_string(),
        thread: thread.to_string(),
        detail,
    };
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(thread.to_string())
            .spawn_scoped(scope, move || -> Result<T, NetnsError> {
                ns.enter()?;
                drop(ns);
                Ok(work())
            })
            .map_err(|e| thread_error(format!("cannot start: {e}")))?;
        handle
            .join()
            .map_err(|panic| thread_error(format!("panicked: {}", panic_message(&*panic))))?
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "with a non-text payload".to_string())
}

/// What a tool run inside a namespace printed, and how long it took from
/// spawn to exit (the programming time kube-proxy's sync pays).
#[derive(Debug)]
pub struct ToolRun {
    pub stdout: String,
    pub elapsed: Duration,
}

/// Runs `program args` with `stdin` inside namespace `ns`. The child joins
/// the namespace between fork and exec (what `nsenter --net` does), with the
/// namespace file opened before the fork; unlike `ip netns exec` this adds
/// no mount-namespace setup to a timed run. Fails unless the tool exits 0.
pub fn run_in(
    ns: &str,
    program: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ToolRun, NetnsError> {
    let ns_file = NetnsFile::open(ns)?;
    let ns_fd = ns_file.file.as_raw_fd();
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes the one setns syscall and
    // allocates nothing (the error is built from errno only). If setns
    // fails the child exits before exec, so nothing runs in the host
    // namespace by mistake. ns_fd stays open until after the spawn.
    unsafe {
        command.pre_exec(move || setns_net(ns_fd));
    }
    let shown = CommandLine::new(program, args, stdin, Some(ns));
    let run = spawn_and_wait(command, stdin, &shown);
    drop(ns_file);
    run
}

/// [`run_in`] for a tool found by name (PATH, then the sbin directories).
pub fn run_tool_in(
    ns: &str,
    tool: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ToolRun, NetnsError> {
    run_in(ns, &find_tool(tool)?, args, stdin)
}

/// `ip -n NS <args>`: `ip` itself switches to the namespace.
pub fn ip(ns: &str, args: &[&str]) -> Result<(), NetnsError> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run_ip(&all)
}

/// Many `ip` commands in one process: `ip -n NS -batch -`.
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    batch("ip", ns, lines)
}

/// `bridge -n NS -batch -`.
pub fn bridge_batch(ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    batch("bridge", ns, lines)
}

fn batch(tool: &str, ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    if lines.is_empty() {
        return Ok(());
    }
    let input = lines.join("\n") + "\n";
    run_host_tool(tool, &["-n", ns, "-batch", "-"], Some(input.as_bytes())).map(|_| ())
}

/// `ip <args>` from the host namespace: only `netns add/delete` and the
/// `-n NS` forms are passed here, and those act inside the named namespace.
fn run_ip(args: &[&str]) -> Result<(), NetnsError> {
    run_host_tool("ip", args, None).map(|_| ())
}

fn run_host_tool(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<ToolRun, NetnsError> {
    let program = find_tool(tool)?;
    let shown = CommandLine::new(&program, args, stdin, None);
    let mut command = Command::new(&program);
    command.args(args);
    spawn_and_wait(command, stdin, &shown)
}

fn find_tool(tool: &str) -> Result<PathBuf, NetnsError> {
    tools::which(tool).ok_or_else(|| NetnsError::ToolMissing {
        tool: tool.to_string(),
    })
}

/// A command as its error messages show it: the program, its arguments,
/// the first lines of its input and the namespace it ran in.
struct CommandLine(String);

impl CommandLine {
    fn new(program: &Path, args: &[&str], stdin: Option<&[u8]>, ns: Option<&str>) -> Self {
        let mut shown = program.display().to_string();
        for arg in args {
            shown.push(' ');
            shown.push_str(arg);
        }
        if let Some(input) = stdin {
            let text = String::from_utf8_lossy(input);
            shown.push_str(&format!(" <<< {}", first_lines(&text, SHOWN_LINES)));
        }
        if let Some(ns) = ns {
            shown.push_str(&format!(" (in {ns})"));
        }
        CommandLine(shown)
    }

    fn failed(&self, detail: String) -> NetnsError {
        NetnsError::Command {
            command: self.0.clone(),
            detail,
        }
    }
}

/// Spawns `command` with piped output, feeds it `stdin` from a second
/// thread (so a chatty child cannot deadlock against a full pipe) and waits.
fn spawn_and_wait(
    mut command: Command,
    stdin: Option<&[u8]>,
    shown: &CommandLine,
) -> Result<ToolRun, NetnsError> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| shown.failed(format!("cannot start: {e}")))?;
    let child_stdin = child.stdin.take();
    let (output, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || match (child_stdin, stdin) {
            (Some(mut pipe), Some(bytes)) => pipe.write_all(bytes),
            _ => Ok(()),
        });
        let output = child.wait_with_output();
        (output, writer.join())
    });
    let elapsed = started.elapsed();
    let output = output.map_err(|e| shown.failed(format!("waiting for it: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(shown.failed(format!(
            "{}: {}",
            output.status,
            first_lines(&stderr, SHOWN_LINES)
        )));
    }
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(shown.failed(format!("writing its input: {e}"))),
        Err(_) => return Err(shown.failed("the input writer panicked".to_string())),
    }
    Ok(ToolRun {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    })
}

/// The first `n` non-empty lines of `text`, joined with " | ".
fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut shown = lines[..lines.len().min(n)].join(" | ");
    if lines.len() > n {
        shown.push_str(&format!(" | ... ({} more lines)", lines.len() - n));
    }
    shown
}

#[cfg(test)]
mod tests;
