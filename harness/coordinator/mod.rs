//! `infraqual run PLAN.toml`: drives the plan's agents phase by phase
//! (inventory, then each probe in registry order), all agents of a
//! phase at once, each result written into the bundle as it arrives. An agent
//! that fails is reported and skipped; the others finish.

mod client;
mod client_identity;
mod collector;
mod discovery;
mod job;
mod peers;
pub mod plan;
mod rounds;
mod schedule;
mod soak;
mod soak_budget;
mod soak_follow;
mod soak_plan;
mod soak_resume;
mod tasks;
mod tournament;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use infraqual_probes::{inventory, CancelToken, ProbeName};
use infraqual_reports::bundle::BundleWriter;
use infraqual_reports::render;
use serde_json::{json, Value};

use crate::api::{Health, TargetRegistration, VERSION};
use crate::exit::Outcome;
use client::AgentClient;
use collector::{Collector, Event};
use job::{run_job, JobError, JobSpec};
use plan::{AgentPlan, Plan};
use tasks::AgentTasks;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The plan: agents, probes and thresholds (see configs/).
    pub plan: PathBuf,
    /// Where run bundles go (overrides the plan's `out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// After the run, save it as baseline NAME (<out>/baselines/NAME/) for
    /// `infraqual compare --baseline NAME RUN`.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Also write the checks as JUnit XML to FILE (one testcase per check per node).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

pub fn run(args: &RunArgs) -> Result<Outcome> {
    if let Some(name) = &args.save_baseline {
        // Bad names fail before anything runs.
        infraqual_reports::baseline::validate_name(name)?;
    }
    let mut plan = Plan::load(&args.plan)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let found = match &plan.discover {
        Some(d) => {
            let found = runtime.block_on(discovery::discover(d))?;
            plan.agents = found.agents.clone();
            Some(found)
        }
        None => None,
    };
    let out = args
        .out
        .clone()
        .or_else(|| plan.out.clone())
        .unwrap_or_else(|| PathBuf::from("runs"));
    let clients: Vec<Arc<AgentClient>> = plan
        .agents
        .iter()
        .map(|a| AgentClient::new(a).map(Arc::new))
        .collect::<Result<_>>()?;

    // A soak continues the bundle its dead coordinator left, if any.
    let (mut bundle, _soak_lock) = match &plan.soak {
        Some(_) => soak_resume::open_bundle(&out, &plan).map(|(b, lock)| (b, Some(lock)))?,
        None => (
            BundleWriter::create(&out, &plan.text, plan.as_json(), plan.profile.clone())
                .with_context(|| format!("--out {}", out.display()))?,
            None,
        ),
    };
    for agent in &plan.agents {
        bundle.add_node(&agent.name, agent.labels.clone());
    }
    let watch = found.map(|found| {
        for (address, problem) in &found.problems {
            bundle.push_error(address, None, problem);
        }
        tokio::sync::Mutex::new(found.watch)
    });
    bundle.save()?;
    let dir = bundle.dir().to_path_buf();
    let (events, collector) = Collector::start(bundle);

    let cancel = crate::signals::cancel_on_signals();
    let orchestra = Orchestra {
        plan: Arc::new(plan),
        clients,
        failed: Arc::default(),
        health: Arc::default(),
        events,
        cancel,
        progress: MultiProgress::with_draw_target(draw_target()),
        watch,
        echo_nonce: crate::agent::generate_token()?,
        rounds: rounds::Book::default(),
        bundle_dir: dir.clone(),
        boot_ids: Arc::default(),
    };
    runtime.block_on(orchestra.run());
    drop(orchestra);
    runtime.shutdown_timeout(Duration::from_secs(2));

    let mut bundle = collector.finish()?;
    let record = bundle.finish()?;
    render::render_bundle(&dir, &record).with_context(|| format!("rendering {}", dir.display()))?;
    crate::commands::qualify::print_summary(&record);
    println!("report: {}", dir.join("report.html").display());
    crate::commands::junit::write_run(args.junit.as_deref(), &record)?;
    if let Some(name) = &args.save_baseline {
        let saved = infraqual_reports::baseline::save(&out, name, &dir)?;
        println!("baseline {name}: {}", saved.display());
    }
    Ok(Outcome::from_verdict(record.verdict))
}

fn draw_target() -> ProgressDrawTarget {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

struct Orchestra {
    plan: Arc<Plan>,
    clients: Vec<Arc<AgentClient>>,
    /// Agents that failed; later phases skip them.
    failed: Arc<Mutex<HashSet<String>>>,
    health: Arc<Mutex<BTreeMap<String, Health>>>,
    events: std::sync::mpsc::Sender<Event>,
    cancel: CancelToken,
    progress: MultiProgress,
    /// With `[discover]`: what DNS said at the start, looked at again
    /// before every phase.
    watch: Option<tokio::sync::Mutex<discovery::Watch>>,
    /// The nonce this run's rtt and mtu exchanges carry; the target agents'
    /// echo responders answer only registered nonces.
    echo_nonce: String,
    /// Rounds of probes the plan runs more than once, until merged.
    rounds: rounds::Book,
    /// Where a fleet soak's per-node interval logs go.
    bundle_dir: PathBuf,
    /// Each agent's boot id from its inventory: agents that share one share
    /// a machine (see `schedule`).
    boot_ids: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Orchestra {
    async fn run(&self) {
        self.connect().await;
        self.phase(inventory::NAME, &json!({})).await;
        if let Some(soak) = &self.plan.soak {
            self.soak_phase(soak, &self.bundle_dir).await;
        }
        self.run_rounds().await;
    }

    fn bar(&self, label: &str, len: usize) -> ProgressBar {
        let bar = self.progress.add(ProgressBar::new(len as u64));
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn alive(&self) -> Vec<Arc<AgentClient>> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        self.clients
            .iter()
            .filter(|c| !failed.contains(&c.name))
            .cloned()
            .collect()
    }

    fn fail_agent(&self, name: &str, probe: Option<ProbeName>, message: String) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        let _ = self.events.send(Event::Error {
            node: name.to_string(),
            probe: probe.map(|p| p.to_string()),
            message,
        });
    }

    /// Agents that appeared in or vanished from the discovered names since
    /// the start: the new ones are reported (not measured), nodes with a
    /// vanished agent are reported and skipped from here on.
    async fn rediscover(&self, next: ProbeName) {
        let (Some(watch), Some(d)) = (&self.watch, &self.plan.discover) else {
            return;
        };
        for change in watch.lock().await.look(d).await {
            match change {
                discovery::Change::Appeared { member, service } => {
                    let _ = self.events.send(Event::Error {
                        node: member.address.to_string(),
                        probe: None,
                        message: format!(
                            "appeared in `{service}` (path {}) after discovery, before the {next} phase: not measured in this run",
                            member.path
                        ),
                    });
                }
                discovery::Change::Vanished {
                    node,
                    member,
                    service,
                } => self.fail_agent(
                    &node,
                    Some(next),
                    format!(
                        "{} (path {}) vanished from `{service}` before the {next} phase: the node is skipped from here on",
                        member.address, member.path
                    ),
                ),
            }
        }
    }

    /// Health and version of every agent, all at once.
    async fn connect(&self) {
        let bar = self.bar("connect", self.clients.len());
        let mut tasks = AgentTasks::new();
        for client in self.clients.clone() {
            let name = client.name.clone();
            tasks.spawn(&name, async move {
                let health = client.get::<Health>("/v1/health").await;
                (client, health)
            });
        }
        while let Some(joined) = tasks.next().await {
            bar.inc(1);
            let (client, health) = match joined {
                Ok(done) => done,
                Err(lost) => {
                    self.fail_agent(&lost.agent, None, lost.message);
                    continue;
                }
            };
            match health {
                Ok(h) if h.version != VERSION => self.fail_agent(
                    &client.name,
                    None,
                    format!(
                        "agent {} runs infraqual {} but the coordinator is {VERSION}: use one release",
                        client.name, h.version
                    ),
                ),
                Ok(h) => {
                    self.health
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(client.name.clone(), h);
                }
                Err(e) => self.fail_agent(&client.name, None, e.to_string()),
            }
        }
        bar.finish();
    }

    /// One probe on every live agent at once. Phases run one after another,
    /// so heavy probes (steal, fsync) never overlap on a machine.
    async fn phase(&self, probe: ProbeName, params: &Value) {
        let agents = self.rounds.still_running(probe, self.alive());
        let bar = self.bar(&self.rounds.label(&self.plan, probe), agents.len());
        let lease = self.plan.lease;
        let mut tasks = AgentTasks::new();
        for client in agents {
            let params = params.clone();
            let cancel = self.cancel.clone();
            let name = client.name.clone();
            tasks.spawn(&name, async move {
                let outcome = match deadline_for(probe, &params) {
                    Ok(deadline) => {
                        let spec = JobSpec {
                            probe,
                            deadline,
                            params,
                            lease,
                        };
                        run_job(&client, spec, &cancel).await
                    }
                    Err(message) => Err(JobError::Probe(message)),
                };
                (client, outcome)
            });
        }
        while let Some(joined) = tasks.next().await {
            bar.inc(1);
            match joined {
                Ok((client, outcome)) => self.record(&client.name, probe, outcome),
                Err(lost) => self.record(&lost.agent, probe, Err(JobError::Probe(lost.message))),
            }
        }
        bar.finish();
    }

    fn record(
        &self,
        node: &str,
        probe: ProbeName,
        outcome: Result<infraqual_probes::ProbeResult, JobError>,
    ) {
        match outcome {
            Ok(result) => {
                if let (true, Some(id)) = (
                    probe == inventory::NAME,
                    result.facts.get("boot_id").and_then(Value::as_str),
                ) {
                    self.boot_ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(node.to_string(), id.to_string());
                }
                let filed = self.rounds.file(&self.plan, node, result);
                self.send_filed(node.to_string(), probe, filed);
            }
            Err(JobError::AgentLost(message)) => self.fail_agent(node, Some(probe), message),
            // The rounds that completed are written, with how many ran.
            Err(JobError::Cancelled) if self.rounds.has_rounds(node, probe) => {}
            Err(JobError::Probe(message)) => {
                self.rounds.fail(node, probe);
                let _ = self.events.send(Event::Error {
                    node: node.to_string(),
                    probe: Some(probe.to_string()),
                    message,
                });
            }
            Err(JobError::Cancelled) => {
                let _ = self.events.send(Event::Error {
                    node: node.to_string(),
                    probe: Some(probe.to_string()),
                    message: "cancelled (the coordinator was interrupted)".into(),
                });
            }
        }
    }

    /// Network probes: one job per source agent, sources one at a time so
    /// their traffic does not disturb each other's latencies.
    async fn pairwise_phase(&self, probe: ProbeName, plan_params: &Value) {
        let agents = self.rounds.still_running(probe, self.alive());
        let bar = self.bar(&self.rounds.label(&self.plan, probe), agents.len());
        for source in &agents {
            if self.cancel.is_cancelled() {
                break;
            }
            let params = self.pairwise_params(&source.name, plan_params);
            let outcome = match params.and_then(|p| deadline_for(probe, &p).map(|d| (p, d))) {
                Ok((params, deadline)) => {
                    let ttl = deadline + self.plan.lease;
                    let registered = match self.register_nonce(source, ttl).await {
                        Ok(()) => register_targets(source, &params, ttl).await,
                        Err(e) => Err(e),
                    };
                    match registered {
                        Ok(()) => {
                            let spec = JobSpec {
                                probe,
                                deadline,
                                params,
                                lease: self.plan.lease,
                            };
                            run_job(source, spec, &self.cancel).await
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(message) => Err(JobError::Probe(message)),
            };
            self.record(&source.name, probe, outcome);
            bar.inc(1);
        }
        bar.finish();
    }

    /// Tells every other live agent's echo responder to answer this run's
    /// nonce while the source measures against it.
    async fn register_nonce(&self, source: &AgentClient, ttl: Duration) -> Result<(), JobError> {
        for target in self.alive() {
            if target.name == source.name {
                continue;
            }
            let plan = self.plan.agents.iter().find(|a| a.name == target.name);
            register_nonce_on(&target, plan, &self.echo_nonce, ttl).await?;
        }
        Ok(())
    }

    /// Targets for a source: every other live agent (or the `peers` it is
    /// given, see `peers.rs`) on every requested path it has an address for,
    /// at its echo port.
    fn pairwise_params(&self, source: &str, plan_params: &Value) -> Result<Value, String> {
        let mut params = plan_params.as_object().cloned().unwrap_or_default();
        let paths: Option<Vec<String>> = params
            .remove("paths")
            .and_then(|p| serde_json::from_value(p).ok());
        let peers = params
            .remove(plan::PEERS_KEY)
            .and_then(|k| k.as_u64())
            .map(|k| k as usize);
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<&str> = self
            .plan
            .agents
            .iter()
            .filter(|a| a.name != source && !failed.contains(&a.name))
            .filter(|a| {
                !a.echo_ports.is_empty()
                    || health.get(&a.name).is_some_and(|h| h.echo_port.is_some())
            })
            .map(|a| a.name.as_str())
            .collect();
        let chosen = peers::choose(source, &candidates, peers);
        let mut targets = Vec::new();
        for agent in &self.plan.agents {
            if !chosen.contains(&agent.name.as_str()) {
                continue;
            }
            let own_port = health.get(&agent.name).and_then(|h| h.echo_port);
            for (path, address) in &agent.addresses {
                if paths.as_ref().is_some_and(|p| !p.contains(path)) {
                    continue;
                }
                let Some(port) = agent.echo_ports.get(path).copied().or(own_port) else {
                    continue;
                };
                targets.push(json!({
                    "node": agent.name, "path": path, "address": address.to_string(), "port": port,
                }));
            }
        }
        if targets.is_empty() {
            return Err("no targets: no other live agent with an echo responder and an address on the requested paths".into());
        }
        params.insert("targets".into(), Value::Array(targets));
        params.insert("echo_nonce".into(), Value::String(self.echo_nonce.clone()));
        Ok(Value::Object(params))
    }
}

/// Tells one measured agent's echo responder (and, for a discovered node,
/// its other agents') to answer this run's nonce for `ttl`.
async fn register_nonce_on(
    target: &AgentClient,
    plan: Option<&AgentPlan>,
    echo_nonce: &str,
    ttl: Duration,
) -> Result<(), JobError> {
    let registration = TargetRegistration {
        addresses: Vec::new(),
        ttl_ms: ttl.as_millis() as u64,
        echo_nonce: Some(echo_nonce.to_string()),
    };
    if let Err(e) = target.post::<_, Value>("/v1/targets", &registration).await {
        return Err(JobError::Probe(format!(
            "registering the run's echo nonce with {}: {e}",
            target.name
        )));
    }
    let Some(plan) = plan else {
        return Ok(());
    };
    for url in &plan.echo_agents {
        let other = AgentPlan {
            url: url.clone(),
            ..plan.clone()
        };
        let registered = match AgentClient::new(&other) {
            Ok(client) => client
                .post::<_, Value>("/v1/targets", &registration)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = registered {
            return Err(JobError::Probe(format!(
                "registering the run's echo nonce with {} at {url}: {e}",
                target.name
            )));
        }
    }
    Ok(())
}

/// Tells the source agent that the targets of its job are agents of this
/// plan (an agent refuses rtt and mtu targets nobody allowed).
async fn register_targets(
    source: &AgentClient,
    params: &Value,
    ttl: Duration,
) -> Result<(), JobError> {
    let addresses = params
        .get("targets")
        .and_then(Value::as_array)
        .map(|targets| {
            targets
                .iter()
                .filter_map(|t| t.get("address")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let registration = TargetRegistration {
        addresses,
        ttl_ms: ttl.as_millis() as u64,
        echo_nonce: None,
    };
    source
        .post::<_, Value>("/v1/targets", &registration)
        .await
        .map(|_| ())
        .map_err(|e| {
            let message = format!("registering the plan's agents as targets: {e}");
            if e.is_unreachable() {
                JobError::AgentLost(message)
            } else {
                JobError::Probe(message)
            }
        })
}

/// The hard deadline a job gets, from the probe's own declaration.
fn deadline_for(probe: ProbeName, params: &Value) -> Result<Duration, String> {
    probe
        .descriptor()
        .deadline(params)
        .map_err(|e| e.to_string())
}
