//! What a crashed fsync run leaves: its work directory
//! `.infraqual-fsync-<pid>-<n>` with preallocated files in it. The next run
//! (and an agent on start) removes the ones whose process is gone; a
//! directory of a live process, or any other name, is never touched.

use std::ffi::OsString;

use super::guard::WORK_PREFIX;
use crate::system::dirfd::DirHandle;
use crate::system::process_alive;

/// Subdirectories visited at most per sweep, so a huge allowed tree cannot
/// stall an agent's start.
const MAX_VISITED: usize = 10_000;

/// The owner pid of a work directory name, if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(WORK_PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the leftovers directly in `dir`; returns their paths, each also
/// logged.
pub fn sweep(dir: &DirHandle) -> Vec<String> {
    let Ok(names) = dir.entries() else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = owner_pid(name) else { continue };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let path = dir.path().join(name);
        match dir.remove_subdir(name) {
            Ok(()) => {
                tracing::warn!(
                    "removed {} left by fsync process {pid}, which is gone",
                    path.display()
                );
                removed.push(path.display().to_string());
            }
            Err(e) => tracing::warn!("could not remove leftover {}: {e}", path.display()),
        }
    }
    removed
}

/// Sweeps `root` and the directories below it (never through a symlink),
/// `depth` levels deep, visiting at most MAX_VISITED directories.
pub fn sweep_tree(root: &DirHandle, depth: usize) -> Vec<String> {
    let mut removed = sweep(root);
    let mut visited = 0usize;
    let mut queue: Vec<(DirHandle, usize)> = Vec::new();
    let mut children = |dir: &DirHandle, level: usize, queue: &mut Vec<(DirHandle, usize)>| {
        let names: Vec<OsString> = dir.entries().unwrap_or_default();
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(WORK_PREFIX) || visited >= MAX_VISITED {
                continue;
            }
            if let Ok(child) = dir.open_subdir(name) {
                visited += 1;
                queue.push((child, level + 1));
            }
        }
    };
    if depth > 0 {
        children(root, 0, &mut queue);
    }
    while let Some((dir, level)) = queue.pop() {
        removed.extend(sweep(&dir));
        if level < depth {
            children(&dir, level, &mut queue);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that no process has: above the kernel's maximum.
    const DEAD_PID: u32 = 4_194_304 + 1;

    #[test]
    fn leftovers_of_gone_processes_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path();
        let dead = format!("{WORK_PREFIX}{DEAD_PID}-0");
        let live = format!("{WORK_PREFIX}{}-0", std::process::id());
        for d in [top.join(&dead), top.join("a/b").join(&dead), top.join(&live)] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("fio-etcd.0"), b"x").unwrap();
        }
        std::fs::create_dir(top.join(".infraqual-fsync-notmine")).unwrap();
        std::fs::write(top.join("keep"), b"x").unwrap();
        let root = DirHandle::open(top).unwrap();
        let removed = sweep_tree(&root, 3);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!top.join(&dead).exists());
        assert!(!top.join("a/b").join(&dead).exists());
        assert!(top.join(&live).exists(), "a live process's directory stays");
        assert!(top.join(".infraqual-fsync-notmine").exists());
        assert!(top.join("keep").exists());
        assert_eq!(owner_pid(&dead), Some(DEAD_PID));
        assert_eq!(owner_pid(".infraqual-fsync-x-1"), None);
    }
}
