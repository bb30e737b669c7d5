//! Guard rails around the disk: free space before writing, a private work
//! directory that is removed on every exit path, and the file helpers both
//! writers share.

// fallocate has no std wrapper.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ProbeError;
use crate::system::dirfd::DirHandle;

/// Prefix of the probe's work directories (and qualify's default).
pub const WORK_PREFIX: &str = ".infraqual-fsync-";

/// Free space kept beyond what the run allocates, so the probe never fills a
/// disk a database is about to need.
pub const HEADROOM_BYTES: u64 = 64 << 20;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory inside the user's directory, made and removed through
/// the parent's descriptor; removed with everything in it when dropped
/// (success, error, cancellation or panic unwinding).
#[derive(Debug)]
pub struct WorkDir<'p> {
    parent: &'p DirHandle,
    name: String,
    dir: DirHandle,
    removed: bool,
}

impl<'p> WorkDir<'p> {
    /// Creates `<parent>/.infraqual-fsync-<pid>-<n>`; fails rather than reuse
    /// an existing one.
    pub fn create(parent: &'p DirHandle) -> Result<Self, ProbeError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{WORK_PREFIX}{}-{n}", std::process::id());
        let dir = parent.create_subdir(&name)?;
        Ok(WorkDir {
            parent,
            name,
            dir,
            removed: false,
        })
    }

    pub fn dir(&self) -> &DirHandle {
        &self.dir
    }

    /// Removes the directory now, reporting a failure (Drop cannot).
    pub fn remove(mut self) -> Result<(), ProbeError> {
        self.removed = true;
        self.parent.remove_subdir(&self.name)
    }
}

impl Drop for WorkDir<'_> {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.parent.remove_subdir(&self.name) {
                tracing::warn!("could not remove {}: {e}", self.dir.path().display());
            }
        }
    }
}

/// Refuses a run that would leave less than HEADROOM_BYTES free.
pub fn check_free_space(dir: &DirHandle, needed: u64) -> Result<u64, ProbeError> {
    let free = dir.free_bytes()?;
    if needed.saturating_add(HEADROOM_BYTES) > free {
        return Err(ProbeError::invalid(
            "size",
            format!(
                "the run needs {} MiB in {} plus {} MiB headroom, but only {} MiB are free",
                needed.div_ceil(1 << 20),
                dir.path().display(),
                HEADROOM_BYTES >> 20,
                free >> 20
            ),
        ));
    }
    Ok(free)
}

/// How a file's space was reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prealloc {
    Fallocate,
    Truncate,
}

impl Prealloc {
    pub fn as_str(self) -> &'static str {
        match self {
            Prealloc::Fallocate => "fallocate",
            Prealloc::Truncate => "truncate",
        }
    }
}

/// Reserves `len` bytes and sets the file size, as fio's layout and etcd's
/// `fileutil.Preallocate(extend=true)` do: fallocate(mode 0), falling back to
/// ftruncate where the filesystem has no fallocate.
pub fn preallocate(file: &File, path: &Path, len: u64) -> Result<Prealloc, ProbeError> {
    let len_off = libc::off_t::try_from(len)
        .map_err(|_| ProbeError::invalid("size", format!("{len} bytes is too large")))?;
    // SAFETY: a valid open descriptor and non-negative range.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
    if rc == 0 {
        return Ok(Prealloc::Fallocate);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            file.set_len(len).map_err(|e| ProbeError::io(path, e))?;
            Ok(Prealloc::Truncate)
        }
        _ => Err(ProbeError::io(path, err)),
    }
}

/// Incompressible bytes (xorshift), so a compressing or deduplicating layer
/// cannot shrink the writes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dir_is_unique_and_removed_on_drop_and_on_remove() {
        let parent = tempfile::tempdir().unwrap();
        let handle = DirHandle::open(parent.path()).unwrap();
        let a = WorkDir::create(&handle).unwrap();
        let b = WorkDir::create(&handle).unwrap();
        assert_ne!(a.dir().path(), b.dir().path());
        drop(a.dir().create_file("f").unwrap());
        let (pa, pb) = (a.dir().path().to_path_buf(), b.dir().path().to_path_buf());
        drop(a);
        assert!(!pa.exists());
        b.remove().unwrap();
        assert!(!pb.exists());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn free_space_is_checked_against_statvfs() {
        let dir = tempfile::tempdir().unwrap();
        let handle = DirHandle::open(dir.path()).unwrap();
        assert!(handle.free_bytes().unwrap() > 0);
        let e = check_free_space(&handle, u64::MAX / 2).unwrap_err();
        assert!(e.to_string().contains("free"), "{e}");
        assert!(matches!(e, ProbeError::InvalidParam { .. }));
    }

    #[test]
    fn preallocate_sets_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let handle = DirHandle::open(dir.path()).unwrap();
        let f = handle.create_file("seg").unwrap();
        preallocate(&f, &dir.path().join("seg"), 1 << 20).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 1 << 20);
    }

    #[test]
    fn random_bytes_have_the_length_and_differ() {
        let b = random_bytes(2300, 7);
        assert_eq!(b.len(), 2300);
        assert_ne!(b[..8], b[8..16]);
    }
}
