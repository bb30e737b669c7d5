//! The rtt phase as a round-robin tournament (see `schedule`): one job per
//! measured direction of a pair, the pairs of a slot at the same time, the
//! slots one after another. When agents share a machine (same boot id), a
//! quick estimate first tells short paths from WAN ones, so that the short
//! ones keep the machine to themselves. Each source's pair results are
//! merged into its one rtt result, which carries the schedule as a fact;
//! the run prints it and the report shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use infraqual_probes::rtt::key::RttMetricKey;
use infraqual_probes::rtt::merge::merge_targets;
use infraqual_probes::{CancelToken, ProbeName, ProbeResult};
use serde_json::{json, Value};

use super::client::AgentClient;
use super::job::{run_job, JobError, JobSpec};
use super::plan::{AgentPlan, PEERS_KEY};
use super::schedule::{self, Schedule, SHORT_BELOW};
use super::tasks::AgentTasks;
use super::{deadline_for, register_nonce_on, register_targets, Orchestra};

/// Exchanges per path in the round-trip estimate: the minimum of a few is
/// enough to tell µs from ms, even on a loaded machine.
const ESTIMATE_COUNT: u32 = 5;

/// One direction's job, ready to run.
#[derive(Clone)]
struct Measurement {
    source: Arc<AgentClient>,
    target: Arc<AgentClient>,
    target_plan: Option<AgentPlan>,
    params: Value,
}

type Outcome = (String, Result<ProbeResult, JobError>);

impl Orchestra {
    pub(super) async fn tournament_phase(&self, probe: ProbeName, plan_params: &Value) {
        let agents = self.alive();
        let index: BTreeMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let mut per_pair: BTreeMap<(usize, usize), Value> = BTreeMap::new();
        for (s, source) in agents.iter().enumerate() {
            match self.pairwise_params(&source.name, plan_params) {
                Ok(params) => {
                    for (target, p) in split_by_target(&params) {
                        if let Some(&t) = index.get(target.as_str()) {
                            per_pair.insert((s, t), p);
                        }
                    }
                }
                Err(message) => self.record(&source.name, probe, Err(JobError::Probe(message))),
            }
        }
        let machines: Vec<Option<String>> = {
            let ids = self.boot_ids.lock().unwrap_or_else(|p| p.into_inner());
            agents.iter().map(|a| ids.get(&a.name).cloned()).collect()
        };
        let shared = shared_machines(&machines);
        let round_trips = if shared.is_empty() {
            BTreeMap::new()
        } else {
            self.estimate(probe, &agents, &per_pair).await
        };
        let short = |a: usize, b: usize| {
            if shared.is_empty() {
                return false;
            }
            let known: Vec<Duration> = [(a, b), (b, a)]
                .iter()
                .filter_map(|d| round_trips.get(d).copied())
                .collect();
            known.is_empty() || known.iter().any(|rt| *rt < SHORT_BELOW)
        };
        let directed: Vec<(usize, usize)> = per_pair.keys().copied().collect();
        let plan = schedule::tournament(agents.len(), &directed, &machines, short);
        let summary = explain(&plan, plan_params, &machines, &shared, agents.len());
        println!("rtt schedule: {summary}");
        tracing::info!(target: "schedule", "{summary}");

        let bar = self.bar(probe.as_str(), plan.directed());
        let mut results: BTreeMap<String, Vec<ProbeResult>> = BTreeMap::new();
        for slot in &plan.slots {
            if self.cancel.is_cancelled() {
                break;
            }
            let mut tasks = AgentTasks::new();
            let failed = self
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for pair in slot {
                let jobs: Vec<Measurement> = pair
                    .directions()
                    .into_iter()
                    .filter(|(s, t)| {
                        !failed.contains(&agents[*s].name) && !failed.contains(&agents[*t].name)
                    })
                    .filter_map(|(s, t)| self.measurement(&agents, s, t, per_pair.get(&(s, t))?))
                    .collect();
                let label = format!("{}-{}", agents[pair.a].name, agents[pair.b].name);
                let ctx = self.pair_context(probe);
                let at_once = !pair.short;
                tasks.spawn(&label, async move { ctx.run_pair(jobs, at_once).await });
            }
            while let Some(joined) = tasks.next().await {
                match joined {
                    Ok(outcomes) => {
                        for (source, outcome) in outcomes {
                            bar.inc(1);
                            match outcome {
                                Ok(result) => results.entry(source).or_default().push(result),
                                Err(e) => self.record(&source, probe, Err(e)),
                            }
                        }
                    }
                    Err(lost) => {
                        let _ = self.events.send(super::Event::Error {
                            node: lost.agent,
                            probe: Some(probe.to_string()),
                            message: lost.message,
                        });
                    }
                }
            }
        }
        for (s, targets) in &plan.turns {
            if self.cancel.is_cancelled() {
                break;
            }
            let failed = self
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let jobs: Vec<Measurement> = targets
                .iter()
                .filter(|t| !failed.contains(&agents[**t].name))
                .filter_map(|&t| self.measurement(&agents, *s, t, per_pair.get(&(*s, t))?))
                .collect();
            if jobs.is_empty() || failed.contains(&agents[*s].name) {
                continue;
            }
            let ctx = self.pair_context(probe);
            let outcome = ctx.run_turn(&jobs).await;
            bar.inc(jobs.len() as u64);
            match outcome {
                Ok(result) => results
                    .entry(agents[*s].name.clone())
                    .or_default()
                    .push(result),
                Err(e) => self.record(&agents[*s].name, probe, Err(e)),
            }
        }
        bar.finish();
        let fact = schedule_fact(&plan, plan_params, &summary);
        for (source, parts) in results {
            if let Some(mut merged) = merge_targets(parts) {
                merged.fact("schedule", fact.clone());
                self.record(&source, probe, Ok(merged));
            }
        }
    }

    /// Source `s` measuring target `t` with `params`.
    fn measurement(
        &self,
        agents: &[Arc<AgentClient>],
        s: usize,
        t: usize,
        params: &Value,
    ) -> Option<Measurement> {
        Some(Measurement {
            source: Arc::clone(agents.get(s)?),
            target: Arc::clone(agents.get(t)?),
            target_plan: self
                .plan
                .agents
                .iter()
                .find(|a| a.name == agents[t].name)
                .cloned(),
            params: params.clone(),
        })
    }

    fn pair_context(&self, probe: ProbeName) -> PairContext {
        PairContext {
            probe,
            lease: self.plan.lease,
            cancel: self.cancel.clone(),
            echo_nonce: self.echo_nonce.clone(),
        }
    }

    /// Every source's round trip to each of its targets at once: a few UDP
    /// exchanges per path, the smallest per pair (a loaded machine inflates
    /// some exchanges, never all). Pairs without an answer are left out and
    /// count as short.
    async fn estimate(
        &self,
        probe: ProbeName,
        agents: &[Arc<AgentClient>],
        per_pair: &BTreeMap<(usize, usize), Value>,
    ) -> BTreeMap<(usize, usize), Duration> {
        let mut tasks = AgentTasks::new();
        for (s, source) in agents.iter().enumerate() {
            let mut targets = Vec::new();
            let mut measured = Vec::new();
            for (&(_, t), params) in per_pair.range((s, 0)..(s + 1, 0)) {
                if let Some(list) = params.get("targets").and_then(Value::as_array) {
                    targets.extend(list.iter().cloned());
                }
                measured.extend(self.measurement(agents, s, t, params));
            }
            let Some(first) = per_pair.range((s, 0)..(s + 1, 0)).next() else {
                continue;
            };
            let mut params = first.1.as_object().cloned().unwrap_or_default();
            params.insert("targets".into(), Value::Array(targets));
            params.insert("kinds".into(), json!(["udp"]));
            params.insert("count".into(), json!(ESTIMATE_COUNT));
            params.insert("warmup".into(), json!(1));
            params.insert("pipeline".into(), json!(1));
            params.remove("rate");
            let ctx = self.pair_context(probe);
            let params = Value::Object(params);
            tasks.spawn(&source.name, async move {
                let Some(job) = measured.first().cloned() else {
                    return Err(JobError::Probe("no targets".into()));
                };
                for m in &measured {
                    ctx.register_target(m).await?;
                }
                ctx.run(&Measurement { params, ..job }).await
            });
        }
        let index: BTreeMap<String, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.clone(), i))
            .collect();
        let mut round_trips = BTreeMap::new();
        while let Some(joined) = tasks.next().await {
            let Ok(Ok(result)) = joined else {
                continue;
            };
            let Some(&s) = index.get(&result.node) else {
                continue;
            };
            for (key, metric) in &result.metrics {
                let Ok(key) = key.parse::<RttMetricKey>() else {
                    continue;
                };
                let Some(&t) = index.get(&key.target) else {
                    continue;
                };
                let rt = Duration::from_nanos(metric.min);
                round_trips
                    .entry((s, t))
                    .and_modify(|d: &mut Duration| *d = (*d).min(rt))
                    .or_insert(rt);
            }
        }
        round_trips
    }
}

/// What a pair's task needs from the orchestra, owned.
#[derive(Clone)]
struct PairContext {
    probe: ProbeName,
    lease: Duration,
    cancel: CancelToken,
    echo_nonce: String,
}

impl PairContext {
    /// Both directions of a pair: at the same time on a WAN path, one
    /// after the other on a short one.
    async fn run_pair(&self, jobs: Vec<Measurement>, at_once: bool) -> Vec<Outcome> {
        if at_once {
            let runs = jobs.iter().map(|m| async move {
                let outcome = match self.register_target(m).await {
                    Ok(()) => self.run(m).await,
                    Err(e) => Err(e),
                };
                (m.source.name.clone(), outcome)
            });
            futures_join_all(runs).await
        } else {
            let mut out = Vec::new();
            for m in &jobs {
                let outcome = match self.register_target(m).await {
                    Ok(()) => self.run(m).await,
                    Err(e) => Err(e),
                };
                out.push((m.source.name.clone(), outcome));
            }
            out
        }
    }

    /// One source and several targets in one job, their exchanges
    /// interleaved: every target answers the nonce, the source accepts
    /// every target's addresses.
    async fn run_turn(&self, jobs: &[Measurement]) -> Result<ProbeResult, JobError> {
        for m in jobs {
            self.register_target(m).await?;
        }
        let mut targets = Vec::new();
        for m in jobs {
            if let Some(list) = m.params.get("targets").and_then(Value::as_array) {
                targets.extend(list.iter().cloned());
            }
        }
        let Some(first) = jobs.first() else {
            return Err(JobError::Probe("a turn without targets".into()));
        };
        let mut params = first.params.clone();
        if let Some(obj) = params.as_object_mut() {
            obj.insert("targets".into(), Value::Array(targets));
        }
        self.run(&Measurement {
            params,
            ..first.clone()
        })
        .await
    }

    /// The measured agent answers this run's nonce; the measuring agent
    /// accepts its addresses as targets.
    async fn register_target(&self, m: &Measurement) -> Result<(), JobError> {
        let deadline = deadline_for(self.probe, &m.params).unwrap_or(Duration::from_secs(60));
        let ttl = deadline + self.lease;
        register_nonce_on(&m.target, m.target_plan.as_ref(), &self.echo_nonce, ttl).await?;
        register_targets(&m.source, &m.params, ttl).await
    }

    async fn run(&self, m: &Measurement) -> Result<ProbeResult, JobError> {
        let deadline = deadline_for(self.probe, &m.params).map_err(JobError::Probe)?;
        let spec = JobSpec {
            probe: self.probe,
            deadline,
            params: m.params.clone(),
            lease: self.lease,
        };
        run_job(&m.source, spec, &self.cancel).await
    }
}

/// Runs futures to completion side by side (a pair has at most two).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => *slot = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// A source's params split into one params value per target node.
fn split_by_target(params: &Value) -> Vec<(String, Value)> {
    let Some(targets) = params.get("targets").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in targets {
        if let Some(node) = t.get("node").and_then(Value::as_str) {
            by_node.entry(node.to_string()).or_default().push(t.clone());
        }
    }
    by_node
        .into_iter()
        .map(|(node, list)| {
            let mut p = params.clone();
            if let Some(obj) = p.as_object_mut() {
                obj.insert("targets".into(), Value::Array(list));
            }
            (node, p)
        })
        .collect()
}

/// Boot ids that more than one agent reported.
fn shared_machines(machines: &[Option<String>]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut shared = BTreeSet::new();
    for id in machines.iter().flatten() {
        if !seen.insert(id.clone()) {
            shared.insert(id.clone());
        }
    }
    shared
}

fn pipeline_of(plan_params: &Value) -> u64 {
    plan_params
        .get("pipeline")
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

fn peers_of(plan_params: &Value) -> Option<u64> {
    plan_params.get(PEERS_KEY).and_then(Value::as_u64)
}

/// One paragraph: what ran when, and why.
fn explain(
    plan: &Schedule,
    plan_params: &Value,
    machines: &[Option<String>],
    shared: &BTreeSet<String>,
    nodes: usize,
) -> String {
    let peers = match peers_of(plan_params) {
        Some(k) => format!("peers = {k} (rendezvous choice)"),
        None => "every pair".to_string(),
    };
    let pipeline = match pipeline_of(plan_params) {
        0 | 1 => "one exchange in flight".to_string(),
        w => format!(
            "pipeline = {w} (up to {w} exchanges in flight on paths whose round takes {} ms or more)",
            SHORT_BELOW.as_millis()
        ),
    };
    let turns = if plan.turns.is_empty() {
        String::new()
    } else {
        format!(
            ", then {} turns alone (a source with its short same-machine targets, {} measurements)",
            plan.turns.len(),
            plan.turns.iter().map(|(_, t)| t.len()).sum::<usize>()
        )
    };
    let why = if shared.is_empty() {
        let known = machines.iter().filter(|m| m.is_some()).count();
        format!(
            "every agent is on its own machine ({known} of {nodes} boot ids known), so disjoint pairs overlap"
        )
    } else {
        let on_shared = machines
            .iter()
            .flatten()
            .filter(|m| shared.contains(*m))
            .count();
        format!(
            "{on_shared} agents share {} machine(s) (same boot id): paths under {} ms there never overlap another measurement on that machine, longer (WAN) pairs may",
            shared.len(),
            SHORT_BELOW.as_millis(),
        )
    };
    format!(
        "{} measurements ({nodes} nodes, {peers}): {} pairs in {} slots, up to {} pairs at once{turns}; {pipeline}; {why}",
        plan.directed(),
        plan.pairs(),
        plan.slots.len(),
        plan.concurrency(),
    )
}

fn schedule_fact(plan: &Schedule, plan_params: &Value, summary: &str) -> Value {
    json!({
        "slots": plan.slots.len(),
        "pairs": plan.pairs(),
        "measurements": plan.directed(),
        "concurrency": plan.concurrency(),
        "turns": plan.turns.len(),
        "peers": peers_of(plan_params),
        "pipeline": pipeline_of(plan_params),
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_splits_into_one_job_per_target_node() {
        let params = json!({
            "count": 10,
            "targets": [
                {"node": "b", "path": "native"},
                {"node": "c", "path": "native"},
                {"node": "b", "path": "overlay"},
            ],
        });
        let split = split_by_target(&params);
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].0, "b");
        assert_eq!(split[0].1["targets"].as_array().unwrap().len(), 2);
        assert_eq!(split[0].1["count"], 10);
        assert_eq!(split[1].1["targets"][0]["node"], "c");
    }

    #[test]
    fn the_explanation_names_slots_concurrency_pipelining_peers_and_why() {
        let machines = vec![Some("host".to_string()); 4];
        let all: Vec<(usize, usize)> = (0..4)
            .flat_map(|s| (0..4).filter(move |&t| t != s).map(move |t| (s, t)))
            .collect();
        let plan = schedule::tournament(4, &all, &machines, |a, b| a / 2 == b / 2);
        let params = json!({"pipeline": 8, "peers": 3});
        let text = explain(&plan, &params, &machines, &shared_machines(&machines), 4);
        assert!(
            text.starts_with(
                "12 measurements (4 nodes, peers = 3 (rendezvous choice)): 4 pairs in 2 slots, \
                 up to 2 pairs at once, then 4 turns alone"
            ),
            "{text}"
        );
        assert!(text.contains("pipeline = 8"), "{text}");
        assert!(text.contains("4 agents share 1 machine(s)"), "{text}");
        let fact = schedule_fact(&plan, &params, &text);
        assert_eq!(fact["slots"], 2);
        assert_eq!(fact["turns"], 4);
    }
}
