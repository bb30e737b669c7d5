//! Rounds in a plan (`rounds = N`, for every probe or per probe): round r
//! of every probe runs on every node before round r+1 of any, so slow drift
//! lands in every probe alike; each node's rounds of a probe are merged by
//! the probe's own merge and written after its last round. A node whose
//! round failed runs no more rounds of that probe; a run cut short
//! (cancelled, agent lost) keeps the rounds that completed, with a warning
//! saying how many of N ran.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use infraqual_probes::rounds::{check_rounds, partial_warning};
use infraqual_probes::{inventory, rtt, ProbeName, ProbeResult};
use serde_json::Value;
use toml::Spanned;

use super::client::AgentClient;
use super::collector::Event;
use super::plan::{Locator, Plan, PlanError};
use super::Orchestra;
use crate::rounds::RoundsOf;

const KEY: &str = "rounds";

/// A `rounds` value: a whole number from 1 to the maximum.
pub(super) fn rounds_value(
    value: &Spanned<toml::Value>,
    loc: &Locator,
    probe: Option<ProbeName>,
) -> Result<u32, PlanError> {
    let key = match probe {
        Some(p) => format!("probes.{p}.{KEY}"),
        None => KEY.to_string(),
    };
    let n = value
        .get_ref()
        .as_integer()
        .ok_or_else(|| "is not a whole number".to_string())
        .and_then(|n| check_rounds(n).map_err(|e| format!("is out of range: {e}")));
    n.map_err(|why| {
        loc.at(
            value.span(),
            format!("{key} {why} (1 ..= 100 complete runs)"),
        )
    })
}

/// A probe's plan section without its `rounds` key, and that key's value.
pub(super) fn split_rounds(
    table: &Spanned<toml::Table>,
    probe: ProbeName,
    loc: &Locator,
) -> Result<(toml::Table, Option<u32>), PlanError> {
    let mut params = table.get_ref().clone();
    let Some(value) = params.remove(KEY) else {
        return Ok((params, None));
    };
    let span = key_span(loc.text, table.span());
    if probe == inventory::NAME {
        return Err(loc.at(
            span,
            format!("probes.{probe}.{KEY}: the inventory describes the machine and runs once"),
        ));
    }
    let spanned = Spanned::new(span, value);
    let n = rounds_value(&spanned, loc, Some(probe))?;
    Ok((params, Some(n)))
}

/// Where `rounds = ...` is written inside a table's span (a table's values
/// carry no spans of their own); the table's span when it is not found.
fn key_span(text: &str, table: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let body = &text[table.start.min(text.len())..table.end.min(text.len())];
    let mut offset = table.start;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(KEY) {
            if rest.trim_start().starts_with('=') {
                let start = offset + (line.len() - trimmed.len());
                return start..start + line.trim_end().len() - (line.len() - trimmed.len());
            }
        }
        offset += line.len();
    }
    table
}

/// A probe's rounds: its own `rounds`, else the plan's; the inventory
/// describes the machine and runs once.
pub(super) fn rounds_for(probe: ProbeName, own: Option<u32>, all: u32) -> u32 {
    if probe == inventory::NAME {
        1
    } else {
        own.unwrap_or(all)
    }
}

/// `params` with `rounds = n` for run.json's copy of the plan, when n > 1.
pub(super) fn with_rounds(params: &Value, n: u32) -> Value {
    let mut params = params.clone();
    if let (true, Some(map)) = (n > 1, params.as_object_mut()) {
        map.insert(KEY.into(), n.into());
    }
    params
}

/// Each node's completed rounds of each probe that runs more than once.
#[derive(Default)]
pub(super) struct Book {
    state: Mutex<BookState>,
    /// The round now running (for progress labels).
    round: AtomicU32,
}

#[derive(Default)]
struct BookState {
    open: BTreeMap<(String, ProbeName), RoundsOf>,
    /// A round failed here: no more rounds of the probe on the node.
    failed: HashSet<(String, ProbeName)>,
}

/// What happens to one round's result.
pub(super) enum Filed {
    /// Write this result (the merge after the last round, or a probe run once).
    Write(Box<ProbeResult>),
    /// Kept until the probe's last round.
    Kept,
    /// The rounds could not be merged: the probe's error on the node.
    Failed(String),
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files one round's result of its probe on `node`.
    pub fn file(&self, plan: &Plan, node: &str, result: ProbeResult) -> Filed {
        let probe = result.probe;
        let asked = plan.rounds_of(probe);
        if asked <= 1 {
            return Filed::Write(Box::new(result));
        }
        let mut state = self.lock();
        let key = (node.to_string(), probe);
        let rounds = state
            .open
            .entry(key.clone())
            .or_insert_with(|| RoundsOf::new(probe, asked));
        rounds.push(result);
        if !rounds.is_complete() {
            return Filed::Kept;
        }
        match state
            .open
            .remove(&key)
            .and_then(|mut r| r.merge(&plan.profile, None))
        {
            Some(Ok(merged)) => Filed::Write(Box::new(merged)),
            Some(Err(e)) => Filed::Failed(format!("merging its rounds: {e}")),
            None => Filed::Kept,
        }
    }

    /// A round of `probe` failed on `node`: its rounds so far are dropped
    /// (the probe's error is what the run records) and it runs no more.
    pub fn fail(&self, node: &str, probe: ProbeName) {
        let mut state = self.lock();
        let key = (node.to_string(), probe);
        state.open.remove(&key);
        state.failed.insert(key);
    }

    /// Whether `node` has completed rounds of `probe` kept for merging.
    pub fn has_rounds(&self, node: &str, probe: ProbeName) -> bool {
        self.lock()
            .open
            .get(&(node.to_string(), probe))
            .is_some_and(|r| r.completed() > 0)
    }

    /// The agents that still run `probe`: not those whose round failed.
    pub fn still_running(
        &self,
        probe: ProbeName,
        agents: Vec<Arc<AgentClient>>,
    ) -> Vec<Arc<AgentClient>> {
        let state = self.lock();
        agents
            .into_iter()
            .filter(|a| !state.failed.contains(&(a.name.clone(), probe)))
            .collect()
    }

    /// The progress label of `probe` in the round now running.
    pub fn label(&self, plan: &Plan, probe: ProbeName) -> String {
        let round = self.round.load(Ordering::Relaxed).max(1);
        crate::rounds::step_label(probe, round, plan.rounds_of(probe))
    }

    /// Every node's unfinished rounds merged, each warning how many ran;
    /// each is also an error, so a run cut short is never complete.
    fn flush(&self, plan: &Plan, why: &str) -> Vec<(String, ProbeName, Filed)> {
        let open = std::mem::take(&mut self.lock().open);
        let mut out = Vec::new();
        for ((node, probe), mut rounds) in open {
            let ran = rounds.completed();
            let Some(merged) = rounds.merge(&plan.profile, Some(why)) else {
                continue;
            };
            let filed = match merged {
                Ok(merged) => Filed::Write(Box::new(merged)),
                Err(e) => Filed::Failed(format!("merging its rounds: {e}")),
            };
            out.push((node.clone(), probe, filed));
            let message = partial_warning(ran, rounds.asked, why);
            out.push((node, probe, Filed::Failed(message)));
        }
        out
    }
}

impl Orchestra {
    /// The probes after the inventory, round by round.
    pub(super) async fn run_rounds(&self) {
        let most = self
            .plan
            .probes
            .iter()
            .map(|(p, _)| self.plan.rounds_of(*p))
            .max()
            .unwrap_or(1);
        'rounds: for round in 1..=most {
            self.rounds.round.store(round, Ordering::Relaxed);
            for (probe, params) in &self.plan.probes {
                if *probe == inventory::NAME || self.plan.rounds_of(*probe) < round {
                    continue;
                }
                if self.cancel.is_cancelled() {
                    break 'rounds;
                }
                self.rediscover(*probe).await;
                if *probe == rtt::NAME {
                    self.tournament_phase(*probe, params).await;
                } else if probe.descriptor().pairwise {
                    self.pairwise_phase(*probe, params).await;
                } else {
                    self.phase(*probe, params).await;
                }
            }
        }
        let why = if self.cancel.is_cancelled() {
            "cancelled"
        } else {
            "its agent was lost"
        };
        for (node, probe, filed) in self.rounds.flush(&self.plan, why) {
            self.send_filed(node, probe, filed);
        }
    }

    /// Writes what filing a round gave: a result, an error, or nothing yet.
    pub(super) fn send_filed(&self, node: String, probe: ProbeName, filed: Filed) {
        let event = match filed {
            Filed::Write(result) => Event::Result { node, result },
            Filed::Failed(message) => Event::Error {
                node,
                probe: Some(probe.to_string()),
                message,
            },
            Filed::Kept => return,
        };
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use infraqual_probes::{mtu, steal};

    use super::*;

    const AGENT: &str = "[[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:7070\"\n";

    fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse(text, "plan.toml", Path::new("/nonexistent"))
    }

    #[test]
    fn rounds_apply_to_every_probe_and_a_probes_own_wins() {
        let p = parse(&format!(
            "name = \"t\"\nrounds = 3\n{AGENT}[probes.inventory]\n[probes.steal]\n\
             duration = \"2s\"\n[probes.mtu]\nrounds = 5\n"
        ))
        .unwrap();
        assert_eq!(p.rounds_of(inventory::NAME), 1);
        assert_eq!(p.rounds_of(steal::NAME), 3);
        assert_eq!(p.rounds_of(mtu::NAME), 5);
        let mtu_params = &p.probes.iter().find(|(n, _)| *n == mtu::NAME).unwrap().1;
        assert!(mtu_params.get("rounds").is_none(), "not a probe parameter");
        assert_eq!(p.as_json()["probes"]["mtu"]["rounds"], 5);
        assert_eq!(p.as_json()["probes"]["steal"]["rounds"], 3);
        assert!(p.as_json()["probes"]["inventory"].get("rounds").is_none());

        let once = parse(&format!("name = \"t\"\n{AGENT}[probes.steal]\n")).unwrap();
        assert_eq!(once.rounds_of(steal::NAME), 1);
        assert!(once.as_json()["probes"]["steal"].get("rounds").is_none());
    }

    #[test]
    fn bad_rounds_name_file_line_column_and_key() {
        for (value, says) in [
            ("0", "out of range"),
            ("101", "out of range"),
            ("-1", "out of range"),
            ("\"three\"", "not a whole number"),
            ("2.5", "not a whole number"),
        ] {
            let e = parse(&format!("name = \"t\"\nrounds = {value}\n{AGENT}")).unwrap_err();
            assert_eq!(
                (e.file.as_str(), e.line, e.column),
                ("plan.toml", 2, 10),
                "{e}"
            );
            assert!(
                e.message.starts_with("rounds ") && e.message.contains(says),
                "{e}"
            );

            let e = parse(&format!(
                "name = \"t\"\n{AGENT}[probes.steal]\nduration = \"2s\"\n  rounds = {value}\n"
            ))
            .unwrap_err();
            assert_eq!((e.line, e.column), (7, 3), "{e}");
            assert!(
                e.message.starts_with("probes.steal.rounds ") && e.message.contains(says),
                "{e}"
            );
        }
        let e = parse(&format!(
            "name = \"t\"\n{AGENT}[probes.inventory]\nrounds = 2\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("runs once"), "{e}");
    }
}
