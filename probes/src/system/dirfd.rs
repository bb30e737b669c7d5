//! Directories held open and worked from by descriptor, so a path is
//! resolved once: a symlink swapped in after the check cannot redirect a
//! later write. The agent resolves a requested directory beneath one of its
//! allowed roots with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or,
//! on kernels without openat2, by walking it one component at a time with
//! O_NOFOLLOW.

// openat2, mkdirat, unlinkat, renameat and fstatvfs have no std wrapper.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::ProbeError;

/// An open directory and the path it had when it was opened (for messages
/// and results only; nothing is resolved through it again).
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    shown: PathBuf,
}

/// Why a directory could not be resolved beneath the allowed roots.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// Lexically outside every root, or reached through a symlink or `..`:
    /// the same answer whether the path exists or not.
    #[error("{path}: outside the agent's allowed directories")]
    Outside { path: PathBuf },
    #[error("{path}: no such directory inside an allowed directory")]
    Missing { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

impl DirHandle {
    /// Opens `path` (symlinks in it followed, once) as a directory.
    pub fn open(path: &Path) -> Result<Self, ProbeError> {
        let c = c_path(path)?;
        // SAFETY: `c` is a valid C string; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), DIR_FLAGS) };
        let fd = owned(fd).map_err(|e| ProbeError::io(path, e))?;
        let handle = DirHandle {
            shown: PathBuf::new(),
            fd,
        };
        let shown = handle.current_path().unwrap_or_else(|| path.to_path_buf());
        Ok(DirHandle { shown, ..handle })
    }

    /// Resolves `requested` beneath one of `roots` without following any
    /// symlink or `..`; the roots were opened by the caller.
    pub fn open_beneath(roots: &[DirHandle], requested: &Path) -> Result<Self, ConfineError> {
        let outside = || ConfineError::Outside {
            path: requested.to_path_buf(),
        };
        let (root, rel) = roots
            .iter()
            .filter_map(|r| requested.strip_prefix(&r.shown).ok().map(|rel| (r, rel)))
            .max_by_key(|(r, _)| r.shown.as_os_str().len())
            .ok_or_else(outside)?;
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(outside());
        }
        let fd = match openat2_beneath(&root.fd, rel) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => walk_beneath(&root.fd, rel),
            other => other,
        };
        let fd = fd.map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR) => outside(),
            Some(libc::ENOENT) => ConfineError::Missing {
                path: requested.to_path_buf(),
            },
            _ => ConfineError::Io {
                path: requested.to_path_buf(),
                source: e,
            },
        })?;
        Ok(DirHandle {
            fd,
            shown: root.shown.join(rel),
        })
    }

    /// The path it was opened as.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// `/proc/self/fd/N`: opening it reaches this very directory (a magic
    /// link, not a path lookup), for read-only helpers that want a path.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Where the directory is now, as the kernel names it.
    fn current_path(&self) -> Option<PathBuf> {
        std::fs::read_link(self.proc_path()).ok()
    }

    /// Creates the subdirectory `name` (mode 0700) and opens it, refusing a
    /// symlink in its place.
    pub fn create_subdir(&self, name: &str) -> Result<DirHandle, ProbeError> {
        let shown = self.shown.join(name);
        let c = c_name(name)?;
        // SAFETY: valid descriptor and C string; the result is checked.
        if unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
            return Err(ProbeError::io(&shown, std::io::Error::last_os_error()));
        }
        self.open_subdir(name)
    }

    /// Creates a new file `name` (never an existing one, never through a
    /// symlink), mode 0600, read-write.
    pub fn create_file(&self, name: &str) -> Result<File, ProbeError> {
        let c = c_name(name)?;
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and C string; the result is checked.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, 0o600) };
        owned(fd)
            .map(File::from)
            .map_err(|e| ProbeError::io(self.shown.join(name), e))
    }

    /// Renames `from` to `to`, both inside this directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), ProbeError> {
        let (a, b) = (c_name(from)?, c_name(to)?);
        let dir = self.fd.as_raw_fd();
        // SAFETY: valid descriptor and C strings; the result is checked.
        if unsafe { libc::renameat(dir, a.as_ptr(), dir, b.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(ProbeError::io(self.shown.join(from), e));
        }
        Ok(())
    }

    /// Removes the file `name` from this directory.
    pub fn remove_file(&self, name: &OsStr) -> Result<(), ProbeError> {
        self.unlink(name, 0)
    }

    /// Opens the existing subdirectory `name`, refusing a symlink.
    pub fn open_subdir(&self, name: &str) -> Result<DirHandle, ProbeError> {
        let shown = self.shown.join(name);
        let c = c_name(name)?;
        // SAFETY: valid descriptor and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                DIR_FLAGS | libc::O_NOFOLLOW,
            )
        };
        let fd = owned(fd).map_err(|e| ProbeError::io(&shown, e))?;
        Ok(DirHandle { fd, shown })
    }

    /// Removes the subdirectory `name` and the plain entries in it (the
    /// probe's work directories hold files only).
    pub fn remove_subdir(&self, name: &str) -> Result<(), ProbeError> {
        let sub = self.open_subdir(name)?;
        for entry in sub.entries()? {
            sub.remove_file(&entry)?;
        }
        self.unlink(OsStr::new(name), libc::AT_REMOVEDIR)
    }

    /// Names in this directory (through its descriptor, not its path).
    pub fn entries(&self) -> Result<Vec<std::ffi::OsString>, ProbeError> {
        let listing =
            std::fs::read_dir(self.proc_path()).map_err(|e| ProbeError::io(&self.shown, e))?;
        let mut names = Vec::new();
        for entry in listing {
            names.push(
                entry
                    .map_err(|e| ProbeError::io(&self.shown, e))?
                    .file_name(),
            );
        }
        Ok(names)
    }

    fn unlink(&self, name: &OsStr, flags: libc::c_int) -> Result<(), ProbeError> {
        let shown = self.shown.join(name);
        let c = CString::new(name.as_bytes())
            .map_err(|_| ProbeError::invalid("dir", "a name contains a NUL byte"))?;
        // SAFETY: valid descriptor and C string; the result is checked.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), flags) } != 0 {
            return Err(ProbeError::io(&shown, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// fsync of the directory itself (after a rename, as etcd does).
    pub fn sync(&self) -> Result<(), ProbeError> {
        // SAFETY: a valid descriptor.
        if unsafe { libc::fsync(self.fd.as_raw_fd()) } != 0 {
            return Err(ProbeError::io(&self.shown, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Bytes available to an unprivileged writer on this filesystem.
    pub fn free_bytes(&self) -> Result<u64, ProbeError> {
        // SAFETY: statvfs is plain integers, for which all-zero is valid.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a writable statvfs.
        if unsafe { libc::fstatvfs(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(ProbeError::io(&self.shown, std::io::Error::last_os_error()));
        }
        Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}

fn owned(fd: libc::c_int) -> std::io::Result<OwnedFd> {
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_path(path: &Path) -> Result<CString, ProbeError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ProbeError::invalid("dir", format!("{}: contains a NUL byte", path.display())))
}

/// A single path component: no separator, not `.` or `..`.
fn c_name(name: &str) -> Result<CString, ProbeError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(ProbeError::invalid(
            "dir",
            format!("{name:?} is not a file name"),
        ));
    }
    CString::new(name).map_err(|_| ProbeError::invalid("dir", "a name contains a NUL byte"))
}

fn openat2_beneath(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain integers, for which all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = DIR_FLAGS as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid descriptor, C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(fd as libc::c_int)
}

/// The fallback: one O_PATH | O_NOFOLLOW step per component, so a symlink
/// anywhere fails (ENOTDIR or ELOOP) instead of being followed.
fn walk_beneath(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    let mut current = root.try_clone()?;
    for component in rel.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let c = CString::new(name.as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and C string; the result is checked.
        current = owned(unsafe { libc::openat(current.as_raw_fd(), c.as_ptr(), flags) })?;
    }
    // Reopen the O_PATH end point for real I/O through its own descriptor.
    let dot = c".";
    // SAFETY: valid descriptor and C string; the result is checked.
    owned(unsafe { libc::openat(current.as_raw_fd(), dot.as_ptr(), DIR_FLAGS) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Vec<DirHandle> {
        vec![DirHandle::open(&dir.canonicalize().unwrap()).unwrap()]
    }

    #[test]
    fn beneath_resolves_subdirectories_and_refuses_symlinks_and_dotdot() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink(top.path(), root.join("link")).unwrap();
        let r = roots(&root);
        let base = r[0].path().to_path_buf();
        let h = DirHandle::open_beneath(&r, &base.join("a/b")).unwrap();
        assert_eq!(h.path(), base.join("a/b"));
        assert!(DirHandle::open_beneath(&r, &base).is_ok());
        for bad in ["link", "link/root", "a/../..", "../root"] {
            let e = DirHandle::open_beneath(&r, &base.join(bad)).unwrap_err();
            assert!(matches!(e, ConfineError::Outside { .. }), "{bad}: {e}");
        }
        let e = DirHandle::open_beneath(&r, &base.join("nope")).unwrap_err();
        assert!(matches!(e, ConfineError::Missing { .. }), "{e}");
    }

    #[test]
    fn paths_outside_every_root_get_one_answer_whether_they_exist_or_not() {
        let top = tempfile::tempdir().unwrap();
        let r = roots(top.path());
        let a = DirHandle::open_beneath(&r, Path::new("/etc")).unwrap_err();
        let b = DirHandle::open_beneath(&r, Path::new("/etcc")).unwrap_err();
        assert!(matches!(a, ConfineError::Outside { .. }));
        assert!(matches!(b, ConfineError::Outside { .. }));
    }

    #[test]
    fn the_o_path_walk_refuses_what_openat2_refuses() {
        let top = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(top.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", top.path().join("a/up")).unwrap();
        let r = roots(top.path());
        assert!(walk_beneath(&r[0].fd, Path::new("a/b")).is_ok());
        let e = walk_beneath(&r[0].fd, Path::new("a/up")).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)),
            "{e}"
        );
    }

    #[test]
    fn files_are_created_renamed_and_removed_through_the_handle() {
        let top = tempfile::tempdir().unwrap();
        let dir = DirHandle::open(top.path()).unwrap();
        let work = dir.create_subdir("w").unwrap();
        drop(work.create_file("0.tmp").unwrap());
        assert!(work.create_file("0.tmp").is_err(), "never an existing file");
        work.rename("0.tmp", "seg.wal").unwrap();
        work.sync().unwrap();
        assert_eq!(
            work.entries().unwrap(),
            vec![std::ffi::OsString::from("seg.wal")]
        );
        assert!(dir.free_bytes().unwrap() > 0);
        dir.remove_subdir("w").unwrap();
        assert_eq!(std::fs::read_dir(top.path()).unwrap().count(), 0);
    }
}
