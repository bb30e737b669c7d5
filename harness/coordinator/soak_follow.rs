//! Following one agent's soak: start it, poll it (renewing its lease) and
//! append what arrives of its interval log to the node's `<node>.hlog` in
//! the bundle. A node's log outlives the coordinator: each agent soak it
//! follows is recorded in the ledger (soak_resume.rs) with the log's size
//! when it began, so the next coordinator knows which agent bytes it holds,
//! fetches the rest of that soak, ends it, and starts one that continues
//! the log (no second header, intervals stamped on the log's time axis).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use infraqual_probes::CancelToken;

use super::client::AgentClient;
use super::job::{stop_if_over, JobError};
use super::soak_resume::{Ledger, Session};
use crate::api::{JobCreated, JobState, LogContinuation, SoakRequest, SoakStatus};
use crate::soak::hlog;

/// Consecutive failed polls before the agent counts as gone.
const POLL_FAILURES: u32 = 3;
/// How long the previous coordinator's soak may take to end once asked
/// (its slice in progress is cancelled; a minute is plenty).
const LEFTOVER_LIMIT: Duration = Duration::from_secs(60);

pub(super) struct Follower<'a> {
    pub client: &'a AgentClient,
    pub log: &'a Path,
    pub ledger: &'a Ledger,
    pub poll: Duration,
}

impl Follower<'_> {
    /// The agent soak a dead coordinator was following for this node, if
    /// any: what it measured since is appended and it is ended. Returns
    /// what happened, for the user.
    pub async fn collect_leftover(&self) -> Option<String> {
        let session = self.ledger.session(&self.client.name)?;
        let mut note = self.collect(&session).await;
        if let Err(e) = self.ledger.end(&self.client.name) {
            note.push_str(&format!("; {e:#}"));
        }
        Some(note)
    }

    async fn collect(&self, session: &Session) -> String {
        let id = &session.soak_id;
        let Some(from) = file_len(self.log).checked_sub(session.log_from) else {
            return format!(
                "{} is shorter than when soak {id} began: its rest is not collected",
                self.log.display()
            );
        };
        let path = format!("/v1/soaks/{id}");
        let mut file = LogFile::at(self.log, from);
        let mut asked_to_end = false;
        let limit = Instant::now() + LEFTOVER_LIMIT;
        loop {
            let status: SoakStatus = match self.client.get(&format!("{path}?from={}", file.written)).await {
                Ok(status) => status,
                Err(e) => {
                    return format!(
                        "soak {id}, which the previous coordinator followed, is gone ({e}): what it measured after the last interval that reached the bundle is missing"
                    )
                }
            };
            if let Err(e) = file.append(&status) {
                return format!("collecting soak {id}: {}: {e}", self.log.display());
            }
            if status.state != JobState::Running {
                let how = if asked_to_end {
                    "was still running; ended it".to_string()
                } else {
                    format!("had ended ({})", status.error.as_deref().unwrap_or("done"))
                };
                let n = file.intervals;
                return format!(
                    "collected {n} interval{} that soak {id} measured after the previous coordinator stopped; it {how}",
                    if n == 1 { "" } else { "s" }
                );
            }
            if !asked_to_end {
                // Its schedule, nonce and registrations were the dead
                // coordinator's: a new soak continues the log instead.
                if let Err(e) = self.client.delete(&path).await {
                    return format!("ending soak {id}: {e}");
                }
                asked_to_end = true;
            }
            if Instant::now() > limit {
                return format!("soak {id} did not end within {LEFTOVER_LIMIT:?} of being asked");
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Starts a soak that continues the node's log (or begins it) and
    /// follows it to its end.
    pub async fn soak(
        &self,
        mut request: SoakRequest,
        give_up: Duration,
        cancel: &CancelToken,
    ) -> Result<(), JobError> {
        let in_log = |e: anyhow::Error| JobError::Probe(format!("{}: {e:#}", self.log.display()));
        let (log_from, continues) = prepare_log(self.log).map_err(in_log)?;
        request.continues = continues;
        let created: JobCreated = self
            .client
            .post("/v1/soaks", &request)
            .await
            .map_err(|e| lost_or_refused(e, "starting the soak"))?;
        let session = Session {
            soak_id: created.id.clone(),
            log_from,
        };
        self.ledger
            .begin(&self.client.name, session)
            .map_err(in_log)?;
        let outcome = self.follow(&created.id, give_up, cancel).await;
        if let Err(e) = self.ledger.end(&self.client.name) {
            tracing::warn!("{}: {e:#}", self.client.name);
        }
        outcome
    }

    async fn follow(
        &self,
        id: &str,
        give_up: Duration,
        cancel: &CancelToken,
    ) -> Result<(), JobError> {
        let client = self.client;
        let path = format!("/v1/soaks/{id}");
        let mut file = LogFile::at(self.log, 0);
        let started = Instant::now();
        let mut failures = 0;
        loop {
            tokio::time::sleep(self.poll).await;
            let what = || format!("the soak on {}", client.name);
            if let Some(stop) = stop_if_over(client, &path, cancel, started, give_up, what).await {
                return Err(stop);
            }
            let status: SoakStatus =
                match client.get(&format!("{path}?from={}", file.written)).await {
                    Ok(status) => status,
                    Err(e) if e.is_unreachable() => {
                        failures += 1;
                        if failures >= POLL_FAILURES {
                            return Err(JobError::AgentLost(format!(
                                "agent stopped answering during the soak: {e}"
                            )));
                        }
                        continue;
                    }
                    Err(e) => return Err(JobError::Probe(e.to_string())),
                };
            failures = 0;
            file.append(&status)
                .map_err(|e| JobError::Probe(format!("{}: {e}", self.log.display())))?;
            match status.state {
                JobState::Running => {}
                JobState::Done => return Ok(()),
                JobState::Failed | JobState::Cancelled => {
                    return Err(JobError::Probe(
                        status.error.unwrap_or_else(|| "the soak failed".into()),
                    ))
                }
            }
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Where a new agent soak's log goes in the node's log: its size (the new
/// soak's byte 0), and how the soak continues it when it holds intervals
/// already (a torn last line, from a coordinator killed mid-write of a
/// chunk nobody can fetch again, is cut off first).
fn prepare_log(path: &Path) -> anyhow::Result<(u64, Option<LogContinuation>)> {
    if file_len(path) == 0 {
        return Ok((0, None));
    }
    let (writer, contents) = hlog::HlogWriter::open(path, SystemTime::now())?;
    drop(writer);
    let continues = LogContinuation {
        start_time: contents.start_time,
        not_before: contents.end(),
    };
    Ok((file_len(path), Some(continues)))
}

fn lost_or_refused(e: super::client::ClientError, doing: &str) -> JobError {
    if e.is_unreachable() {
        JobError::AgentLost(format!("{doing}: {e}"))
    } else {
        JobError::Probe(format!("{doing}: {e}"))
    }
}

/// A node's interval log in the bundle, appended as chunks of one agent
/// soak's log arrive and synced, so a coordinator killed mid-soak leaves
/// every whole interval it received.
struct LogFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Bytes of the agent soak's log this file holds.
    written: u64,
    /// Intervals appended through this handle.
    intervals: usize,
}

impl LogFile {
    fn at(path: &Path, written: u64) -> Self {
        LogFile {
            path: path.to_path_buf(),
            file: None,
            written,
            intervals: 0,
        }
    }

    fn append(&mut self, status: &SoakStatus) -> std::io::Result<()> {
        if status.offset != self.written {
            return Err(std::io::Error::other(format!(
                "the agent sent the log from byte {}, expected {}",
                status.offset, self.written
            )));
        }
        if status.log.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(status.log.as_bytes())?;
        file.sync_data()?;
        self.written += status.log.len() as u64;
        self.intervals += hlog::intervals_in(&status.log);
        Ok(())
    }
}
