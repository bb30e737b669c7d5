//! One probe run on one agent: start the job, poll it (which renews its
//! lease) until it ends, cancel it if the coordinator is stopped.

use std::time::{Duration, Instant};

use infraqual_probes::{CancelToken, ProbeName, ProbeResult};
use serde_json::Value;

use super::client::{AgentClient, ClientError};
use crate::api::{JobCreated, JobRequest, JobState, JobStatus};

const FIRST_POLL: Duration = Duration::from_millis(25);
const MAX_POLL: Duration = Duration::from_millis(1000);
/// Consecutive failed polls before the agent counts as gone.
const POLL_FAILURES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The agent refused the job or its probe failed: the agent is fine.
    #[error("{0}")]
    Probe(String),
    /// The agent stopped answering: skip it from now on.
    #[error("{0}")]
    AgentLost(String),
    #[error("cancelled")]
    Cancelled,
}

/// What the coordinator asks of one job.
pub struct JobSpec {
    pub probe: ProbeName,
    pub params: Value,
    pub deadline: Duration,
    pub lease: Duration,
}

pub async fn run_job(
    client: &AgentClient,
    spec: JobSpec,
    cancel: &CancelToken,
) -> Result<ProbeResult, JobError> {
    let JobSpec {
        probe,
        params,
        deadline,
        lease,
    } = spec;
    let request = JobRequest {
        probe,
        params,
        lease_ms: lease.as_millis() as u64,
        deadline_ms: deadline.as_millis() as u64,
    };
    let created: JobCreated = client.post("/v1/jobs", &request).await.map_err(classify)?;
    let path = format!("/v1/jobs/{}", created.id);
    let started = Instant::now();
    let give_up = deadline + lease * 2;
    // Polls must come well within the lease, or the agent cancels the job.
    let max_poll = MAX_POLL.min(lease / 4);
    let mut interval = FIRST_POLL;
    let mut failures = 0;
    loop {
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(max_poll);
        let what = || format!("{probe} on {}", client.name);
        if let Some(stop) = stop_if_over(client, &path, cancel, started, give_up, what).await {
            return Err(stop);
        }
        match client.get::<JobStatus>(&path).await {
            Ok(status) => {
                failures = 0;
                match status.state {
                    JobState::Running => continue,
                    JobState::Done => {
                        return status.result.ok_or_else(|| {
                            JobError::Probe(format!("{probe}: the agent reported no result"))
                        })
                    }
                    JobState::Failed | JobState::Cancelled => {
                        return Err(JobError::Probe(
                            status.error.unwrap_or_else(|| format!("{probe} failed")),
                        ))
                    }
                }
            }
            Err(e) if e.is_unreachable() => {
                failures += 1;
                if failures >= POLL_FAILURES {
                    return Err(JobError::AgentLost(format!(
                        "agent stopped answering during {probe}: {e}"
                    )));
                }
            }
            Err(e) => return Err(classify(e)),
        }
    }
}

/// Between two polls of something long running on an agent at `path`: a
/// cancelled coordinator or one past `give_up` cancels it there and stops.
pub(super) async fn stop_if_over(
    client: &AgentClient,
    path: &str,
    cancel: &CancelToken,
    started: Instant,
    give_up: Duration,
    what: impl FnOnce() -> String,
) -> Option<JobError> {
    if cancel.is_cancelled() {
        let _ = client.delete(path).await;
        return Some(JobError::Cancelled);
    }
    if started.elapsed() > give_up {
        let _ = client.delete(path).await;
        return Some(JobError::Probe(format!(
            "{} did not finish within {} s",
            what(),
            give_up.as_secs()
        )));
    }
    None
}

fn classify(e: ClientError) -> JobError {
    if e.is_unreachable() {
        JobError::AgentLost(e.to_string())
    } else {
        JobError::Probe(e.to_string())
    }
}
