//! A soak on the agent (`POST /v1/soaks`), for a coordinator's fleet soak:
//! once per interval the agent runs the paced slices `infraqual soak` runs
//! (steal, rtt to peers, fsync in etcd's WAL pattern), each as an ordinary
//! job, so the agent's bounds hold for hours as they do for one probe: one
//! heavy probe at a time, fsync confined to --allow-dir, rtt only to
//! allowed targets, deadlines, /metrics. Each
//! interval is appended to the soak's interval log (the `.hlog` text) as it
//! ends; the coordinator's polls fetch it and renew the soak's lease. A
//! soak ends after its `for_ms`, when cancelled, or when the polls stop for
//! a lease; it can never outlive `for_ms` plus one interval and a minute.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use infraqual_probes::{registry, CancelToken, ProbeName, ProbeResult};
use serde_json::Value;

use super::jobs::{Jobs, StartError};
use crate::api::{JobRequest, JobState, SoakPeer, SoakRequest, SoakStatus};
use crate::soak::hlog::{self, IntervalFacts};
use crate::soak::{
    collect, continuation_stamp, epoch_seconds, paced_steps, round3, Peer, Schedule,
};

/// Slack past `for` before the soak's hard deadline cancels it.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);
/// A soak's slices are polled in-process this often.
const SLICE_POLL: Duration = Duration::from_millis(50);
/// At most this much of the log goes out in one answer; the rest on the
/// next poll (the coordinator's client reads at most 64 MiB).
const MAX_CHUNK: usize = 4 << 20;
/// A finished soak nobody fetched in full is forgotten after this long.
const FINISHED_TTL: Duration = Duration::from_secs(600);
const MIN_LEASE: Duration = Duration::from_secs(2);

struct Session {
    id: String,
    state: JobState,
    lease: Duration,
    last_seen: Instant,
    finished: Option<Instant>,
    cancel: CancelToken,
    /// The log from byte `base` on: what the coordinator has not yet
    /// confirmed receiving (a poll `from=N` confirms everything before N).
    log: String,
    base: u64,
    intervals: u64,
    error: Option<String>,
}

/// The agent's soak: at most one at a time.
#[derive(Clone, Default)]
pub struct Soaks {
    slot: Arc<Mutex<Option<Session>>>,
    next_id: Arc<Mutex<u64>>,
}

impl Soaks {
    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn start(&self, jobs: &Jobs, req: SoakRequest) -> Result<String, StartError> {
        let (total, every) = (
            Duration::from_millis(req.for_ms),
            Duration::from_millis(req.every_ms),
        );
        let schedule = match req.continues {
            Some(_) => Schedule::continuing(total, every),
            None => Schedule::new(total, every),
        }
        .map_err(|e| StartError::BadRequest(e.to_string().replace("--", "")))?;
        if let Some(dir) = &req.dir {
            // Refused now rather than in the first interval's fsync slice.
            jobs.resolve_allowed(dir)?;
        }
        if let Some(refused) = req.peers.iter().find(|p| !jobs.targets.allows(p.address)) {
            return Err(StartError::Forbidden(format!(
                "peer {} is not allowed: start the agent with --allow-target CIDR, \
                 or let the coordinator register its plan's agents",
                refused.address
            )));
        }
        let steps = rtt_with_paths(
            paced_steps(&schedule, req.dir.as_deref(), &peers(&req.peers)),
            &req.peers,
            req.echo_nonce.as_deref(),
        );
        for (probe, params) in &steps {
            registry::validate(*probe, params)
                .map_err(|e| StartError::BadRequest(e.to_string()))?;
        }
        let mut slot = self.lock();
        if let Some(s) = slot.as_ref().filter(|s| s.state == JobState::Running) {
            return Err(StartError::Busy(format!(
                "busy: soak {} is running; one soak at a time",
                s.id
            )));
        }
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            format!("soak-{next}")
        };
        let now = Instant::now();
        // A continued log has its header; its intervals go on from where
        // the log's time axis stands now.
        let (log, stamp_base) = match req.continues {
            Some(c) => (
                String::new(),
                continuation_stamp(epoch_seconds(SystemTime::now()), c.start_time, c.not_before),
            ),
            None => (hlog::header(SystemTime::now()), 0.0),
        };
        let cancel = CancelToken::new()
            .with_deadline(now + schedule.total + schedule.every + DEADLINE_SLACK);
        *slot = Some(Session {
            id: id.clone(),
            state: JobState::Running,
            lease: Duration::from_millis(req.lease_ms).max(MIN_LEASE),
            last_seen: now,
            finished: None,
            cancel: cancel.clone(),
            log,
            base: 0,
            intervals: 0,
            error: None,
        });
        drop(slot);
        let soaks = self.clone();
        let jobs = jobs.clone();
        let soak_id = id.clone();
        let spawned = std::thread::Builder::new().name(id.clone()).spawn(move || {
            let outcome = soaks.run(&jobs, &schedule, &steps, stamp_base, &cancel);
            soaks.finish(&soak_id, outcome);
        });
        if let Err(e) = spawned {
            self.finish(&id, Err(format!("cannot start a thread: {e}")));
        }
        Ok(id)
    }

    /// The soak's loop: the slices of each interval, then the wait for the
    /// interval's end; each interval appended as it ends, stamped from
    /// `stamp_base` on.
    fn run(
        &self,
        jobs: &Jobs,
        schedule: &Schedule,
        steps: &[(ProbeName, Value)],
        stamp_base: f64,
        cancel: &CancelToken,
    ) -> Result<(), String> {
        let anchor = Instant::now();
        let mut measured = Duration::ZERO;
        while measured + schedule.every / 2 <= schedule.total {
            let started = Instant::now();
            let mut facts = IntervalFacts {
                start: round3(stamp_base + started.duration_since(anchor).as_secs_f64()),
                ..Default::default()
            };
            let mut series = Vec::new();
            for (probe, params) in steps {
                match self.slice(jobs, *probe, params, cancel) {
                    Ok(result) => collect(&result, &mut facts, &mut series),
                    Err(_) if cancel.is_cancelled() => break,
                    Err(e) => tracing::warn!("soak: {probe} slice: {e}"),
                }
            }
            let end = started + schedule.every;
            while Instant::now() < end && self.alive(cancel) {
                std::thread::sleep((end - Instant::now()).min(Duration::from_millis(200)));
            }
            if !self.alive(cancel) {
                return Err(self.cancel_reason());
            }
            facts.length = round3(started.elapsed().as_secs_f64());
            let text = hlog::interval_text(&facts, &series).map_err(|e| format!("{e:#}"))?;
            if let Some(s) = self.lock().as_mut() {
                s.log.push_str(&text);
                s.intervals += 1;
            }
            measured += started.elapsed();
        }
        Ok(())
    }

    /// Whether the soak goes on: not cancelled, and polled within its lease
    /// (a coordinator that died must not leave the agent soaking).
    fn alive(&self, cancel: &CancelToken) -> bool {
        if cancel.is_cancelled() {
            return false;
        }
        let mut slot = self.lock();
        let Some(s) = slot.as_mut() else {
            return false;
        };
        if s.last_seen.elapsed() > s.lease {
            tracing::warn!(soak = %s.id, "lease expired: cancelling");
            s.error = Some(format!(
                "cancelled: no poll for {} s (lease expired)",
                s.lease.as_secs()
            ));
            s.cancel.cancel();
            return false;
        }
        true
    }

    fn cancel_reason(&self) -> String {
        self.lock()
            .as_ref()
            .and_then(|s| s.error.clone())
            .unwrap_or_else(|| "cancelled: the soak's deadline passed".into())
    }

    /// One slice as an ordinary job of the agent, polled here until it ends.
    fn slice(
        &self,
        jobs: &Jobs,
        probe: ProbeName,
        params: &Value,
        cancel: &CancelToken,
    ) -> Result<ProbeResult, String> {
        let deadline = probe
            .descriptor()
            .deadline(params)
            .map_err(|e| e.to_string())?;
        let id = jobs
            .start(JobRequest {
                probe,
                params: params.clone(),
                lease_ms: MIN_LEASE.as_millis() as u64 * 5,
                deadline_ms: deadline.as_millis() as u64,
            })
            .map_err(|e| e.to_string())?;
        loop {
            std::thread::sleep(SLICE_POLL);
            if !self.alive(cancel) {
                jobs.cancel(&id, "the soak was cancelled");
            }
            let Some(status) = jobs.poll(&id) else {
                return Err(format!("job {id} vanished"));
            };
            match status.state {
                JobState::Running => continue,
                JobState::Done => return status.result.ok_or_else(|| "no result".into()),
                JobState::Failed | JobState::Cancelled => {
                    return Err(status.error.unwrap_or_else(|| format!("{probe} failed")))
                }
            }
        }
    }

    fn finish(&self, id: &str, outcome: Result<(), String>) {
        let ended = match &outcome {
            Ok(()) => "done".to_string(),
            Err(message) => format!("error={message:?}"),
        };
        tracing::info!(target: "audit", "audit action=finish-soak id={id} outcome={ended}");
        let mut slot = self.lock();
        let Some(s) = slot.as_mut().filter(|s| s.id == id) else {
            return;
        };
        s.finished = Some(Instant::now());
        match outcome {
            Ok(()) => s.state = JobState::Done,
            Err(message) => {
                s.state = if s.cancel.is_cancelled() {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                s.error.get_or_insert(message);
            }
        }
    }

    /// A poll: drops what the coordinator confirmed (`from`) and renews the
    /// lease, and returns the rest of the log (bounded). A look without
    /// `from` confirms nothing and renews nothing: only the coordinator that
    /// follows the log keeps the soak alive.
    pub fn poll(&self, id: &str, from: Option<u64>) -> Result<SoakStatus, PollError> {
        let mut slot = self.lock();
        if slot
            .as_ref()
            .and_then(|s| s.finished)
            .is_some_and(|f| f.elapsed() > FINISHED_TTL)
        {
            *slot = None;
        }
        let s = slot
            .as_mut()
            .filter(|s| s.id == id)
            .ok_or(PollError::Unknown)?;
        if from.is_some() {
            s.last_seen = Instant::now();
        }
        let end = s.base + s.log.len() as u64;
        let from = from.unwrap_or(s.base);
        if from < s.base || from > end {
            return Err(PollError::Offset { base: s.base, end });
        }
        s.log.drain(..(from - s.base) as usize);
        s.base = from;
        let mut take = s.log.len().min(MAX_CHUNK);
        while !s.log.is_char_boundary(take) {
            take -= 1;
        }
        Ok(SoakStatus {
            id: s.id.clone(),
            // Finished only once the whole log went out.
            state: if take < s.log.len() {
                JobState::Running
            } else {
                s.state
            },
            intervals: s.intervals,
            offset: s.base,
            log: s.log[..take].to_string(),
            error: s.error.clone(),
        })
    }

    pub fn cancel(&self, id: &str, reason: &str) -> bool {
        let mut slot = self.lock();
        match slot.as_mut().filter(|s| s.id == id) {
            Some(s) => {
                if s.state == JobState::Running {
                    s.error = Some(reason.to_string());
                    s.cancel.cancel();
                }
                true
            }
            None => false,
        }
    }
}

fn peers(peers: &[SoakPeer]) -> Vec<Peer> {
    peers
        .iter()
        .map(|p| Peer {
            node: p.node.clone(),
            addr: SocketAddr::new(p.address, p.port),
        })
        .collect()
}

/// The rtt slice measures each peer on its own path and carries the run's
/// echo nonce, which the peers' responders answer.
fn rtt_with_paths(
    mut steps: Vec<(ProbeName, Value)>,
    peers: &[SoakPeer],
    echo_nonce: Option<&str>,
) -> Vec<(ProbeName, Value)> {
    for (probe, params) in &mut steps {
        if *probe == infraqual_probes::rtt::NAME {
            params["targets"] = serde_json::json!(peers);
            if let Some(nonce) = echo_nonce {
                params["echo_nonce"] = nonce.into();
            }
        }
    }
    steps
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("no such soak")]
    Unknown,
    #[error("from: the agent holds the log from byte {base} to {end}")]
    Offset { base: u64, end: u64 },
}
