//! The fleet soak of a plan with `[soak]`: every agent soaks at once, with
//! rtt slices to the others on the soak's `paths`
//! (`POST /v1/soaks`), the coordinator polls each (renewing the soak's
//! lease) and appends what arrives of its interval log to `<node>.hlog` in
//! the run bundle as intervals end. At the end each node's log becomes its
//! results the way a local soak's does: merged histograms, per-interval
//! timelines, overall and worst-window verdicts. A coordinator that is
//! interrupted cancels the soaks; one that dies stops polling, and each
//! agent ends its soak when the lease runs out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infraqual_probes::CancelToken;
use serde_json::json;

use super::client::AgentClient;
use super::collector::Event;
use super::job::{stop_if_over, JobError};
use super::soak_plan::SoakPlan;
use super::tasks::AgentTasks;
use super::Orchestra;
use crate::api::{JobCreated, JobState, SoakPeer, SoakRequest, SoakStatus};
use crate::soak::{hlog, windows};

const MAX_POLL: Duration = Duration::from_secs(1);
/// Consecutive failed polls before the agent counts as gone.
const POLL_FAILURES: u32 = 3;
/// Past `for` plus one interval, the agent's own deadline (for + every +
/// 60 s) has ended its soak; this is the coordinator's margin beyond it.
const GIVE_UP_SLACK: Duration = Duration::from_secs(90);
/// rtt targets and echo nonces are registered for twice this long and
/// renewed this often while the soaks run.
const REGISTRATION_RENEWAL: Duration = Duration::from_secs(3600);

impl Orchestra {
    pub(super) async fn soak_phase(&self, soak: &SoakPlan, bundle_dir: &Path) {
        let agents = self.alive();
        let bar = self.bar("soak", agents.len());
        let request = SoakRequest {
            for_ms: soak.total.as_millis() as u64,
            every_ms: soak.every.as_millis() as u64,
            lease_ms: self.plan.lease.as_millis() as u64,
            dir: soak.dir.clone(),
            peers: Vec::new(),
            echo_nonce: None,
        };
        let poll = MAX_POLL.min(self.plan.lease / 4);
        let give_up = soak.total + soak.every + GIVE_UP_SLACK;
        let mut tasks = AgentTasks::new();
        let mut measuring_rtt = Vec::new();
        for client in agents {
            let log = bundle_dir.join(format!("{}.hlog", client.name));
            let mut request = request.clone();
            if !soak.paths.is_empty() {
                match self.register_soak_peers(&client, soak).await {
                    Ok(peers) => {
                        request.peers = peers;
                        request.echo_nonce = Some(self.echo_nonce.clone());
                        measuring_rtt.push(std::sync::Arc::clone(&client));
                    }
                    Err(message) => {
                        bar.inc(1);
                        self.soak_error(&client.name, message);
                        continue;
                    }
                }
            }
            let cancel = self.cancel.clone();
            tasks.spawn(&client.name.clone(), async move {
                let outcome = follow(&client, &request, &log, poll, give_up, &cancel).await;
                (client, log, outcome)
            });
        }
        // Registrations expire (an agent keeps one at most a day): renew
        // them while the soaks run.
        let mut renew = tokio::time::interval_at(
            tokio::time::Instant::now() + REGISTRATION_RENEWAL,
            REGISTRATION_RENEWAL,
        );
        loop {
            let joined = tokio::select! {
                joined = tasks.next() => joined,
                _ = renew.tick() => {
                    for client in &measuring_rtt {
                        if let Err(message) = self.register_soak_peers(client, soak).await {
                            tracing::warn!("{}: renewing the soak's rtt peers: {message}", client.name);
                        }
                    }
                    continue;
                }
            };
            let Some(joined) = joined else {
                break;
            };
            bar.inc(1);
            let (client, log, outcome) = match joined {
                Ok(done) => done,
                Err(lost) => {
                    self.soak_error(&lost.agent, lost.message);
                    continue;
                }
            };
            // What arrived counts, also from a soak that ended early.
            self.soak_results(&client.name, &log, soak);
            match outcome {
                Ok(()) => {}
                Err(JobError::AgentLost(message)) => self.fail_agent(&client.name, None, message),
                Err(JobError::Probe(message)) => self.soak_error(&client.name, message),
                Err(JobError::Cancelled) => self.soak_error(
                    &client.name,
                    "soak cancelled (the coordinator was interrupted)".into(),
                ),
            }
        }
        bar.finish();
    }

    /// Lets the source's rtt slices reach the other agents' echo responders
    /// on the soak's paths (targets and the run's nonce registered on both
    /// sides, as for an rtt phase); returns the peers.
    async fn register_soak_peers(
        &self,
        source: &AgentClient,
        soak: &SoakPlan,
    ) -> Result<Vec<SoakPeer>, String> {
        let params = self.pairwise_params(&source.name, &json!({ "paths": soak.paths }))?;
        let ttl = REGISTRATION_RENEWAL * 2;
        self.register_nonce(source, ttl)
            .await
            .map_err(|e| e.to_string())?;
        super::register_targets(source, &params, ttl)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_value(params["targets"].clone())
            .map_err(|e| format!("the soak's rtt peers: {e}"))
    }

    fn soak_error(&self, node: &str, message: String) {
        let _ = self.events.send(Event::Error {
            node: node.to_string(),
            probe: None,
            message: format!("soak: {message}"),
        });
    }

    fn soak_results(&self, node: &str, log: &Path, soak: &SoakPlan) {
        let results = hlog::read(log)
            .and_then(|contents| windows::results(&contents, node, &self.plan.profile, soak.every));
        match results {
            Ok(results) if results.is_empty() => {
                self.soak_error(node, "no interval completed".into())
            }
            Ok(results) => {
                for result in results {
                    let _ = self.events.send(Event::Result {
                        node: node.to_string(),
                        result: Box::new(result),
                    });
                }
            }
            Err(e) => self.soak_error(node, format!("{e:#}")),
        }
    }
}

/// Starts one agent's soak and follows it to its end, appending its log.
async fn follow(
    client: &AgentClient,
    request: &SoakRequest,
    log: &Path,
    poll: Duration,
    give_up: Duration,
    cancel: &CancelToken,
) -> Result<(), JobError> {
    let created: JobCreated = client
        .post("/v1/soaks", request)
        .await
        .map_err(|e| lost_or_refused(e, "starting the soak"))?;
    let path = format!("/v1/soaks/{}", created.id);
    let mut file = LogFile::new(log);
    let started = Instant::now();
    let mut failures = 0;
    loop {
        tokio::time::sleep(poll).await;
        let what = || format!("the soak on {}", client.name);
        if let Some(stop) = stop_if_over(client, &path, cancel, started, give_up, what).await {
            return Err(stop);
        }
        let status: SoakStatus = match client.get(&format!("{path}?from={}", file.written)).await {
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
            .map_err(|e| JobError::Probe(format!("{}: {e}", log.display())))?;
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

fn lost_or_refused(e: super::client::ClientError, doing: &str) -> JobError {
    if e.is_unreachable() {
        JobError::AgentLost(format!("{doing}: {e}"))
    } else {
        JobError::Probe(format!("{doing}: {e}"))
    }
}

/// A node's interval log in the bundle, appended as chunks arrive and
/// synced, so a coordinator killed mid-soak leaves every whole interval
/// it received.
struct LogFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    written: u64,
}

impl LogFile {
    fn new(path: &Path) -> Self {
        LogFile {
            path: path.to_path_buf(),
            file: None,
            written: 0,
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
        Ok(())
    }
}
