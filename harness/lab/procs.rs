//! The lab's background processes (agents, delay lines): started in their
//! own session so they outlive `lab up`, recorded by pid, and stopped by
//! pid only after checking the pid still runs our command for this lab.

// setsid before exec, and reaping and signalling processes known only by
// pid (from the lab's state file), have no std wrapper.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Starts `exe args...` detached, stdout and stderr into `log`.
pub fn spawn(exe: &Path, args: &[String], log: &Path) -> Result<u32> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("duplicating the log handle")?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))?;
    Ok(child.id())
}

/// Waits for `path` to exist (a ready file written atomically), while the
/// process lives; the log's tail explains a death.
pub fn wait_ready(path: &Path, pid: u32, log: &Path, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_string());
            }
        }
        reap(pid);
        if !alive(pid) {
            bail!(
                "process {pid} exited before it was ready: {}",
                tail(log).unwrap_or_default()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "process {pid} not ready after {timeout:?}: {}",
                tail(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    Some(lines.into_iter().rev().collect::<Vec<_>>().join(" | "))
}

/// Collects a child of this process that exited (a no-op for others).
fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: WNOHANG wait on one pid.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
}

pub fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state is 'Z'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` still runs a command line containing `marker` (the lab id),
/// so a recycled pid is never signalled.
fn ours(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).contains(marker))
        .unwrap_or(false)
}

/// SIGTERM, up to `grace` to exit, then SIGKILL. Returns whether it is gone.
pub fn stop(pid: u32, marker: &str, grace: Duration) -> bool {
    if !alive(pid) || !ours(pid, marker) {
        reap(pid);
        return true;
    }
    // SAFETY: signalling a pid verified above to be ours.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(pid);
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if ours(pid, marker) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for _ in 0..50 {
        reap(pid);
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The infraqual binary to start agents and delay lines from.
pub fn default_exe() -> Result<PathBuf> {
    std::env::current_exe().context("locating the infraqual binary")
}
