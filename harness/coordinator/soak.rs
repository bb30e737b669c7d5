//! The fleet soak of a plan with `[soak]`: every agent soaks at once, with
//! rtt slices to the others on the soak's `paths`
//! (`POST /v1/soaks`), the coordinator polls each (renewing the soak's
//! lease) and appends what arrives of its interval log to `<node>.hlog` in
//! the run bundle as intervals end (soak_follow.rs). At the end each node's
//! log becomes its results the way a local soak's does: merged histograms,
//! per-interval timelines, overall and worst-window verdicts. A coordinator
//! that is interrupted cancels the soaks; one that dies stops polling, and
//! each agent ends its soak when the lease runs out. The same command run
//! again continues the soak in the same bundle (soak_resume.rs) for what
//! its `for` still allows.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use infraqual_probes::units::HumanDuration;
use serde_json::json;

use super::client::AgentClient;
use super::collector::Event;
use super::job::JobError;
use super::soak_follow::Follower;
use super::soak_plan::SoakPlan;
use super::soak_resume::Ledger;
use super::tasks::AgentTasks;
use super::Orchestra;
use crate::api::{SoakPeer, SoakRequest};
use crate::soak::{hlog, still_owed, windows};

const MAX_POLL: Duration = Duration::from_secs(1);
/// Past `for` plus one interval, the agent's own deadline (for + every +
/// 60 s) has ended its soak; this is the coordinator's margin beyond it.
const GIVE_UP_SLACK: Duration = Duration::from_secs(90);

/// How often the rtt registrations (targets on each source, the run's echo
/// nonce on every agent) are renewed: once per soak interval. Each lives
/// two intervals, so one failed renewal is survived, and a dead
/// coordinator's nonce stops being answered within two intervals, about
/// when its soaks end for want of polls.
fn registration_period(soak: &SoakPlan) -> Duration {
    soak.every
}

impl Orchestra {
    pub(super) async fn soak_phase(&self, soak: &SoakPlan, bundle_dir: &Path) {
        let agents = self.alive();
        let bar = self.bar("soak", agents.len());
        let ledger = match Ledger::open(bundle_dir) {
            Ok(ledger) => Arc::new(ledger),
            Err(e) => {
                for client in &agents {
                    self.soak_error(&client.name, format!("{e:#}"));
                }
                bar.finish();
                return;
            }
        };
        let elapsed = ledger.elapsed();
        let owed = still_owed(soak.total, soak.every, elapsed);
        if ledger.continued {
            let left = match owed {
                Some(owed) => format!("{} left", HumanDuration(owed)),
                None => "its `for` has passed: judging what was measured".into(),
            };
            eprintln!(
                "soak: began {} ago; {left}",
                HumanDuration(Duration::from_secs(elapsed.as_secs()))
            );
        }
        let request = owed.map(|owed| SoakRequest {
            for_ms: owed.as_millis() as u64,
            every_ms: soak.every.as_millis() as u64,
            lease_ms: self.plan.lease.as_millis() as u64,
            dir: soak.dir.clone(),
            peers: Vec::new(),
            echo_nonce: None,
            continues: None,
        });
        let poll = MAX_POLL.min(self.plan.lease / 4);
        let give_up = owed.unwrap_or_default() + soak.every + GIVE_UP_SLACK;
        let period = registration_period(soak);
        let mut tasks = AgentTasks::new();
        let mut measuring_rtt = Vec::new();
        for client in agents {
            let log = bundle_dir.join(format!("{}.hlog", client.name));
            let mut request = request.clone();
            if let (Some(request), false) = (&mut request, soak.paths.is_empty()) {
                match self.register_soak_peers(&client, soak, period * 2).await {
                    Ok(peers) => {
                        request.peers = peers;
                        request.echo_nonce = Some(self.echo_nonce.clone());
                        measuring_rtt.push(Arc::clone(&client));
                    }
                    Err(message) => {
                        bar.inc(1);
                        self.soak_error(&client.name, message);
                        continue;
                    }
                }
            }
            let cancel = self.cancel.clone();
            let ledger = Arc::clone(&ledger);
            tasks.spawn(&client.name.clone(), async move {
                let follower = Follower {
                    client: &client,
                    log: &log,
                    ledger: &ledger,
                    poll,
                };
                if let Some(note) = follower.collect_leftover().await {
                    eprintln!("soak: {}: {note}", client.name);
                }
                let outcome = match request {
                    Some(request) => follower.soak(request, give_up, &cancel).await,
                    None => Ok(()),
                };
                (Arc::clone(&client), log, outcome)
            });
        }
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let joined = tokio::select! {
                joined = tasks.next() => joined,
                _ = renew.tick() => {
                    self.renew_soak_registrations(&measuring_rtt, soak, period * 2).await;
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

    /// Renews what the running rtt slices need: the run's nonce on every
    /// live agent (once each) and each measuring source's targets.
    async fn renew_soak_registrations(
        &self,
        sources: &[Arc<AgentClient>],
        soak: &SoakPlan,
        ttl: Duration,
    ) {
        if sources.is_empty() {
            return;
        }
        for target in self.alive() {
            let plan = self.plan.agents.iter().find(|a| a.name == target.name);
            if let Err(e) = super::register_nonce_on(&target, plan, &self.echo_nonce, ttl).await {
                tracing::warn!("{}: renewing the soak's echo nonce: {e}", target.name);
            }
        }
        for source in sources {
            let renewed = match self.pairwise_params(&source.name, &json!({ "paths": soak.paths }))
            {
                Ok(params) => super::register_targets(source, &params, ttl)
                    .await
                    .map_err(|e| e.to_string()),
                Err(message) => Err(message),
            };
            if let Err(message) = renewed {
                tracing::warn!(
                    "{}: renewing the soak's rtt targets: {message}",
                    source.name
                );
            }
        }
    }

    /// Lets the source's rtt slices reach the other agents' echo responders
    /// on the soak's paths (targets and the run's nonce registered on both
    /// sides, as for an rtt phase); returns the peers.
    async fn register_soak_peers(
        &self,
        source: &AgentClient,
        soak: &SoakPlan,
        ttl: Duration,
    ) -> Result<Vec<SoakPeer>, String> {
        let params = self.pairwise_params(&source.name, &json!({ "paths": soak.paths }))?;
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
