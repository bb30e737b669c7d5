//! Entering a named network namespace (/run/netns/NAME, as `ip netns add`
//! makes them) on the calling thread only: setns(2) is per thread, and
//! threads the caller spawns afterwards inherit the namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name}: {source}")]
    Open {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {name} (needs CAP_SYS_ADMIN): {source}")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Moves the calling thread into namespace `name`.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let file = File::open(path_of(name)).map_err(|source| NetnsError::Open {
        name: name.to_string(),
        source,
    })?;
    // SAFETY: setns on a valid, open namespace fd; affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Enter {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
