//! Guard rails around the disk: free space before writing, a private work
//! directory that is removed on every exit path, and the file helpers both
//! writers share.

// statvfs and fallocate have no std wrapper.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ProbeError;

/// Prefix of the probe's work directories (and qualify's default).
pub const WORK_PREFIX: &str = ".infraqual-fsync-";

/// Free space kept beyond what the run allocates, so the probe never fills a
/// disk a database is about to need.
pub const HEADROOM_BYTES: u64 = 64 << 20;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory inside the user's directory; removed with everything in
/// it when dropped (success, error, cancellation or panic unwinding).
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    removed: bool,
}

impl WorkDir {
    /// Creates `<parent>/.infraqual-fsync-<pid>-<n>`; fails rather than reuse
    /// an existing one.
    pub fn create(parent: &Path) -> Result<Self, ProbeError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{WORK_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| ProbeError::io(&path, e))?;
        Ok(WorkDir {
            path,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now, reporting a failure (Drop cannot).
    pub fn remove(mut self) -> Result<(), ProbeError> {
        self.removed = true;
        std::fs::remove_dir_all(&self.path).map_err(|e| ProbeError::io(&self.path, e))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Bytes available to an unprivileged writer on the filesystem of `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, ProbeError> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| ProbeError::invalid("dir", "contains a NUL byte"))?;
    // SAFETY: statvfs is plain integers, for which all-zero is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(ProbeError::io(dir, std::io::Error::last_os_error()));
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Refuses a run that would leave less than HEADROOM_BYTES free.
pub fn check_free_space(dir: &Path, needed: u64) -> Result<u64, ProbeError> {
    let free = free_bytes(dir)?;
    if needed.saturating_add(HEADROOM_BYTES) > free {
        return Err(ProbeError::invalid(
            "size",
            format!(
                "the run needs {} MiB in {} plus {} MiB headroom, but only {} MiB are free",
                needed.div_ceil(1 << 20),
                dir.display(),
                HEADROOM_BYTES >> 20,
                free >> 20
            ),
        ));
    }
    Ok(free)
}

/// Creates a new file (never an existing one, never through a symlink).
pub fn create_file(path: &Path) -> Result<File, ProbeError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| ProbeError::io(path, e))
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

/// fsync of a directory (after a rename, as etcd does).
pub fn sync_dir(path: &Path) -> Result<(), ProbeError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| ProbeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dir_is_unique_and_removed_on_drop_and_on_remove() {
        let parent = tempfile::tempdir().unwrap();
        let a = WorkDir::create(parent.path()).unwrap();
        let b = WorkDir::create(parent.path()).unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("f"), b"x").unwrap();
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        drop(a);
        assert!(!pa.exists());
        b.remove().unwrap();
        assert!(!pb.exists());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn free_space_is_checked_against_statvfs() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let e = check_free_space(dir.path(), u64::MAX / 2).unwrap_err();
        assert!(e.to_string().contains("free"), "{e}");
        assert!(matches!(e, ProbeError::InvalidParam { .. }));
    }

    #[test]
    fn preallocate_sets_the_size_and_create_refuses_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let f = create_file(&path).unwrap();
        preallocate(&f, &path, 1 << 20).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 1 << 20);
        assert!(create_file(&path).is_err());
    }

    #[test]
    fn random_bytes_have_the_length_and_differ() {
        let b = random_bytes(2300, 7);
        assert_eq!(b.len(), 2300);
        assert_ne!(b[..8], b[8..16]);
    }
}
