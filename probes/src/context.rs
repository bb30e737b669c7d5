//! What every probe is handed: the node name, the thresholds to judge by, and
//! a cancellation token with a deadline, passed down rather than polled from
//! globals so an agent or a signal handler can stop any probe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::ProbeError;
use crate::probe::ProbeName;
use crate::profile::Profile;
use crate::system::dirfd::DirHandle;

/// Shared stop flag plus an optional hard deadline.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that also reports cancelled once `deadline` has passed.
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        let deadline = match self.deadline {
            Some(existing) => existing.min(deadline),
            None => deadline,
        };
        CancelToken {
            flag: Arc::clone(&self.flag),
            deadline: Some(deadline),
        }
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// `Err(Cancelled)` once cancelled, for `?` at loop boundaries.
    pub fn check(&self, probe: ProbeName) -> Result<(), ProbeError> {
        if self.is_cancelled() {
            Err(ProbeError::Cancelled {
                probe: probe.to_string(),
            })
        } else {
            Ok(())
        }
    }
}

/// Per-run context shared by all probes.
#[derive(Clone, Debug)]
pub struct ProbeContext {
    pub node: String,
    pub profile: Arc<Profile>,
    pub cancel: CancelToken,
    /// The directory a writing probe must work in, already resolved by the
    /// caller (the agent, beneath its allowed roots); None: the probe opens
    /// its `dir` parameter itself.
    pub write_dir: Option<Arc<DirHandle>>,
}

impl ProbeContext {
    pub fn new(node: &str, profile: Profile) -> Self {
        ProbeContext {
            node: node.to_string(),
            profile: Arc::new(profile),
            cancel: CancelToken::new(),
            write_dir: None,
        }
    }

    /// A context for tests and one-off runs: node `local`, default profile.
    pub fn local() -> Self {
        Self::new("local", Profile::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cancel_is_shared_between_clones() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        assert!(b.check(crate::steal::NAME).is_err());
    }

    #[test]
    fn deadline_cancels_and_keeps_the_earliest() {
        let t = CancelToken::new();
        let past = t.with_deadline(Instant::now() - Duration::from_millis(1));
        assert!(past.is_cancelled());
        let later = past.with_deadline(Instant::now() + Duration::from_secs(60));
        assert!(later.is_cancelled(), "the earlier deadline wins");
        assert!(!t.is_cancelled());
    }
}
