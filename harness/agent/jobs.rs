//! The agent's jobs: each runs a probe on its own OS thread, holds a lease
//! that the coordinator's polls renew, and has a hard deadline. A job whose
//! lease runs out is cancelled, and its probe removes what it made.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use infraqual_probes::system::dirfd::{ConfineError, DirHandle};
use infraqual_probes::system::netns;
use infraqual_probes::{registry, CancelToken, ProbeContext, ProbeName, ProbeResult, Profile};

use super::targets::{check_traffic_limits, job_target_addresses, TargetPolicy};
use crate::api::{JobRequest, JobState, JobStatus};

use super::totals::Totals;

/// Finished jobs nobody fetched are forgotten after this long.
pub const FINISHED_TTL: Duration = Duration::from_secs(60);
/// A finished job is forgotten this long after a poll first returned it
/// finished (long enough for a retried poll to see it again).
pub const FETCHED_TTL: Duration = Duration::from_secs(5);
/// Bound on remembered jobs, so a misbehaving client cannot grow memory;
/// when full, the oldest finished job makes room.
pub const MAX_JOBS: usize = 1024;
/// Running jobs of one light probe kind (heavy probes run one at a time).
pub const MAX_RUNNING_PER_PROBE: usize = 4;
/// What a 429 tells the client to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 1;
/// Leases shorter than this would expire between two ordinary polls.
const MIN_LEASE: Duration = Duration::from_secs(2);
const MAX_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// Why a job could not be started: each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Busy(String),
    /// Answered 429 with Retry-After.
    #[error("{0}")]
    Full(String),
}

struct Job {
    probe: ProbeName,
    state: JobState,
    started: Instant,
    last_seen: Instant,
    lease: Duration,
    finished: Option<Instant>,
    /// When a poll first returned the job finished.
    fetched: Option<Instant>,
    cancel: CancelToken,
    result: Option<ProbeResult>,
    error: Option<String>,
}

#[derive(Default)]
struct Table {
    jobs: HashMap<String, Job>,
    next_id: u64,
    /// Newest result per probe, for /metrics.
    latest: BTreeMap<ProbeName, ProbeResult>,
    /// Every finished job folded in, for /metrics' histograms and counters.
    totals: Totals,
}

impl Table {
    /// Forgets the finished job that finished first; false if none has.
    fn evict_oldest_finished(&mut self) -> bool {
        let oldest = self
            .jobs
            .iter()
            .filter_map(|(id, j)| j.finished.map(|f| (f, id.clone())))
            .min();
        match oldest {
            Some((_, id)) => self.jobs.remove(&id).is_some(),
            None => false,
        }
    }
}

#[derive(Clone)]
pub struct Jobs {
    table: Arc<Mutex<Table>>,
    node: String,
    profile: Arc<Profile>,
    allow_dirs: Arc<Vec<DirHandle>>,
    netns: Option<String>,
    pub targets: Arc<TargetPolicy>,
}

impl Jobs {
    pub fn new(
        node: String,
        profile: Profile,
        allow_dirs: Vec<DirHandle>,
        netns: Option<String>,
    ) -> Self {
        Jobs {
            table: Arc::default(),
            node,
            profile: Arc::new(profile),
            allow_dirs: Arc::new(allow_dirs),
            netns,
            targets: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panicking job thread must not take the agent down with it.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn start(&self, req: JobRequest) -> Result<String, StartError> {
        registry::validate(req.probe, &req.params)
            .map_err(|e| StartError::BadRequest(e.to_string()))?;
        let probe = req.probe.descriptor();
        let writes_to = probe
            .writes_to(&req.params)
            .map_err(|e| StartError::BadRequest(e.to_string()))?;
        let write_dir = match writes_to.as_slice() {
            [] => None,
            [dir] => Some(Arc::new(self.resolve_allowed(dir)?)),
            _ => {
                return Err(StartError::BadRequest(format!(
                    "{}: a probe may write in one directory",
                    req.probe
                )))
            }
        };
        if probe.pairwise {
            check_traffic_limits(&req.params).map_err(StartError::Forbidden)?;
            let addresses = job_target_addresses(&req.params).map_err(StartError::BadRequest)?;
            if let Some(refused) = addresses.iter().find(|a| !self.targets.allows(**a)) {
                return Err(StartError::Forbidden(format!(
                    "target {refused} is not allowed: start the agent with --allow-target CIDR, \
                     or let the coordinator register its plan's agents"
                )));
            }
        }
        let lease = Duration::from_millis(req.lease_ms).max(MIN_LEASE);
        let deadline = Duration::from_millis(req.deadline_ms).min(MAX_DEADLINE);

        let mut table = self.lock();
        if probe.heavy {
            if let Some((id, job)) = table
                .jobs
                .iter()
                .find(|(_, j)| j.state == JobState::Running && j.probe.descriptor().heavy)
            {
                return Err(StartError::Busy(format!(
                    "busy: job {id} ({}) is running; one heavy probe at a time",
                    job.probe
                )));
            }
        }
        let running_same = table
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running && j.probe == req.probe)
            .count();
        if running_same >= MAX_RUNNING_PER_PROBE {
            return Err(StartError::Full(format!(
                "full: {running_same} {} jobs running (at most {MAX_RUNNING_PER_PROBE}); \
                 retry after {RETRY_AFTER_SECS} s",
                req.probe
            )));
        }
        if table.jobs.len() >= MAX_JOBS && !table.evict_oldest_finished() {
            return Err(StartError::Full(format!(
                "full: {MAX_JOBS} jobs running; retry after {RETRY_AFTER_SECS} s"
            )));
        }
        table.next_id += 1;
        let id = format!("{}-{}", req.probe, table.next_id);
        let now = Instant::now();
        let cancel = CancelToken::new().with_deadline(now + deadline);
        table.jobs.insert(
            id.clone(),
            Job {
                probe: req.probe,
                state: JobState::Running,
                started: now,
                last_seen: now,
                lease,
                finished: None,
                fetched: None,
                cancel: cancel.clone(),
                result: None,
                error: None,
            },
        );
        drop(table);

        let mut ctx = ProbeContext::new(&self.node, (*self.profile).clone());
        ctx.cancel = cancel;
        ctx.write_dir = write_dir;
        let jobs = self.clone();
        let job_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                let outcome = match &jobs.netns {
                    Some(ns) => netns::enter(ns).map_err(|e| e.to_string()).and_then(|_| {
                        registry::run(req.probe, &req.params, &ctx).map_err(|e| e.to_string())
                    }),
                    None => registry::run(req.probe, &req.params, &ctx).map_err(|e| e.to_string()),
                };
                jobs.finish(&job_id, outcome);
            });
        if let Err(e) = spawned {
            self.finish(&id, Err(format!("cannot start a thread: {e}")));
        }
        Ok(id)
    }

    /// Opens `dir` beneath an allowed root, once; the probe works from the
    /// handle, so nothing swapped in later changes where it writes.
    pub(super) fn resolve_allowed(&self, dir: &Path) -> Result<DirHandle, StartError> {
        if self.allow_dirs.is_empty() {
            return Err(StartError::Forbidden(format!(
                "{}: this agent allows no directories (start it with --allow-dir)",
                dir.display()
            )));
        }
        DirHandle::open_beneath(&self.allow_dirs, dir).map_err(|e| match e {
            ConfineError::Outside { .. } => StartError::Forbidden(e.to_string()),
            ConfineError::Missing { .. } | ConfineError::Io { .. } => {
                StartError::BadRequest(e.to_string())
            }
        })
    }

    fn finish(&self, id: &str, outcome: Result<ProbeResult, String>) {
        let ended = match &outcome {
            Ok(_) => "done".to_string(),
            Err(message) => format!("error={message:?}"),
        };
        tracing::info!(target: "audit", "audit action=finish-job id={id} outcome={ended}");
        let mut table = self.lock();
        let mut latest = None;
        if let Some(job) = table.jobs.get_mut(id) {
            job.finished = Some(Instant::now());
            match outcome {
                Ok(result) => {
                    job.state = JobState::Done;
                    latest = Some(result.clone());
                    job.result = Some(result);
                }
                Err(message) => {
                    job.state = if job.cancel.is_cancelled() {
                        JobState::Cancelled
                    } else {
                        JobState::Failed
                    };
                    if job.error.is_none() {
                        job.error = Some(message);
                    }
                }
            }
        }
        if let Some((probe, state)) = table.jobs.get(id).map(|j| (j.probe, j.state)) {
            let outcome = match state {
                JobState::Done => "done",
                JobState::Cancelled => "cancelled",
                JobState::Running | JobState::Failed => "failed",
            };
            table.totals.record_outcome(probe, outcome);
        }
        if let Some(result) = latest {
            for problem in table.totals.record_result(&result) {
                tracing::warn!("/metrics skips a histogram: {problem}");
            }
            table.latest.insert(result.probe, result);
        }
    }

    /// A poll: renews the lease and reports the job.
    pub fn poll(&self, id: &str) -> Option<JobStatus> {
        let mut table = self.lock();
        let job = table.jobs.get_mut(id)?;
        job.last_seen = Instant::now();
        if job.state != JobState::Running && job.fetched.is_none() {
            job.fetched = Some(job.last_seen);
        }
        Some(JobStatus {
            id: id.to_string(),
            probe: job.probe,
            state: job.state,
            elapsed_ms: job.started.elapsed().as_millis() as u64,
            result: job.result.clone(),
            error: job.error.clone(),
        })
    }

    pub fn cancel(&self, id: &str, reason: &str) -> bool {
        let mut table = self.lock();
        match table.jobs.get_mut(id) {
            Some(job) => {
                if job.state == JobState::Running {
                    job.error = Some(reason.to_string());
                    job.cancel.cancel();
                }
                true
            }
            None => false,
        }
    }

    /// Cancels running jobs whose lease expired and forgets old finished ones.
    /// A cancelled probe keeps running while it cleans up; it is cancelled
    /// (and logged) once, not again on every reap until it exits.
    pub fn reap(&self) {
        let now = Instant::now();
        let mut table = self.lock();
        for (id, job) in table.jobs.iter_mut() {
            let expired = now.duration_since(job.last_seen) > job.lease;
            if job.state == JobState::Running && expired && !job.cancel.is_cancelled() {
                tracing::warn!(job = %id, "lease expired: cancelling");
                job.error = Some(format!(
                    "cancelled: no poll for {} s (lease expired)",
                    job.lease.as_secs()
                ));
                job.cancel.cancel();
            }
        }
        table.jobs.retain(|_, j| {
            let fresh = j
                .finished
                .is_none_or(|f| now.duration_since(f) < FINISHED_TTL);
            let unfetched = j
                .fetched
                .is_none_or(|f| now.duration_since(f) < FETCHED_TTL);
            fresh && unfetched
        });
    }

    pub fn running(&self) -> usize {
        self.lock()
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .count()
    }

    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for j in self.lock().jobs.values() {
            let key = match j.state {
                JobState::Running => "running",
                JobState::Done => "done",
                JobState::Failed => "failed",
                JobState::Cancelled => "cancelled",
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    pub fn latest(&self) -> Vec<ProbeResult> {
        self.lock().latest.values().cloned().collect()
    }

    /// Cancels everything and waits (bounded) for the probes to clean up.
    pub fn shutdown(&self, wait: Duration) {
        for job in self.lock().jobs.values() {
            job.cancel.cancel();
        }
        let until = Instant::now() + wait;
        while self.running() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Log lines written while a test runs, for asserting what was logged.
    #[derive(Clone, Default)]
    struct CapturedLog(Arc<Mutex<Vec<u8>>>);

    impl Write for CapturedLog {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A job whose probe is still running (no thread: only the table entry)
    /// and whose coordinator stopped polling long ago.
    fn abandoned_job(jobs: &Jobs) {
        let long_ago = Instant::now() - Duration::from_secs(60);
        jobs.lock().jobs.insert(
            "fsync-1".to_string(),
            Job {
                probe: infraqual_probes::fsync::NAME,
                state: JobState::Running,
                started: long_ago,
                last_seen: long_ago,
                lease: MIN_LEASE,
                finished: None,
                fetched: None,
                cancel: CancelToken::new(),
                result: None,
                error: None,
            },
        );
    }

    #[test]
    fn an_expired_lease_cancels_and_logs_once_while_the_probe_winds_down() {
        let jobs = Jobs::new("n1".into(), Profile::default(), Vec::new(), None);
        abandoned_job(&jobs);
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                jobs.reap();
            }
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("lease expired").count(), 1, "{text}");
        let status = jobs.poll("fsync-1").unwrap();
        assert_eq!(status.state, JobState::Running, "the probe has not exited");
        assert!(status.error.unwrap().contains("lease expired"));
    }

    fn finished_job(jobs: &Jobs, id: &str, finished_ago: Duration) {
        let at = Instant::now() - finished_ago;
        jobs.lock().jobs.insert(
            id.to_string(),
            Job {
                probe: infraqual_probes::rtt::NAME,
                state: JobState::Failed,
                started: at,
                last_seen: at,
                lease: MIN_LEASE,
                finished: Some(at),
                fetched: None,
                cancel: CancelToken::new(),
                result: None,
                error: Some("x".into()),
            },
        );
    }

    #[test]
    fn a_fetched_finished_job_is_forgotten_after_the_short_retention() {
        let jobs = Jobs::new("n1".into(), Profile::default(), Vec::new(), None);
        finished_job(&jobs, "rtt-1", Duration::from_secs(1));
        finished_job(&jobs, "rtt-2", Duration::from_secs(1));
        assert!(jobs.poll("rtt-1").is_some());
        jobs.lock().jobs.get_mut("rtt-1").unwrap().fetched =
            Some(Instant::now() - FETCHED_TTL - Duration::from_millis(1));
        jobs.reap();
        assert!(
            jobs.poll("rtt-1").is_none(),
            "fetched and retained long enough"
        );
        assert!(jobs.poll("rtt-2").is_some(), "not fetched yet: kept");
        finished_job(&jobs, "rtt-3", FINISHED_TTL + Duration::from_secs(1));
        jobs.reap();
        assert!(jobs.poll("rtt-3").is_none(), "unfetched past the retention");
    }

    #[test]
    fn a_full_table_makes_room_by_forgetting_the_oldest_finished_job() {
        let jobs = Jobs::new("n1".into(), Profile::default(), Vec::new(), None);
        for i in 0..MAX_JOBS {
            finished_job(
                &jobs,
                &format!("rtt-{i}"),
                Duration::from_millis(i as u64 + 1),
            );
        }
        assert!(jobs.lock().evict_oldest_finished());
        assert_eq!(jobs.lock().jobs.len(), MAX_JOBS - 1);
        assert!(jobs.poll("rtt-0").is_some(), "the newest stays");
        assert!(
            jobs.poll(&format!("rtt-{}", MAX_JOBS - 1)).is_none(),
            "the oldest went"
        );
    }
}
