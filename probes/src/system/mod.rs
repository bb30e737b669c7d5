//! Readers of /proc, /sys and installed tools, shared by the probes.

pub mod block;
pub mod dirfd;
pub mod kernel;
pub mod mounts;
pub mod netns;
pub mod tools;

use std::path::Path;

/// Reads a small pseudo-file and trims it; None when absent or unreadable,
/// because most /sys attributes are optional on some kernel or hypervisor.
pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path.as_ref())
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether process `pid` exists (a zombie counts: its files may still be in
/// use until it is reaped).
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}
