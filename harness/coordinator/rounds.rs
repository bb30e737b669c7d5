//! Rounds in a plan (`rounds = N`, for every probe or per probe): round r
//! of every probe runs on every node before round r+1 of any, so slow drift
//! lands in every probe alike; each node's rounds of a probe are merged by
//! the probe's own merge and written after its last round. A node whose
//! round failed runs no more rounds of that probe; a run cut short
//! (cancelled, agent lost) keeps the rounds that completed, with a warning
//! saying how many of N ran. `rounds_over = "5m"` (for every probe or per
//! probe) spreads a probe's rounds evenly over that span: before its round
//! r the run waits until the round is due (probes/src/rounds/spacing.rs).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use infraqual_probes::rounds::spacing::{parse_over, round_offset};
use infraqual_probes::rounds::{check_rounds, partial_warning};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{inventory, rtt, ProbeName, ProbeResult};
use serde_json::Value;
use toml::Spanned;

use super::client::AgentClient;
use super::collector::Event;
use super::plan::{Locator, Plan, PlanError};
use super::Orchestra;
use crate::rounds::{step_label, waiting_message, RoundsOf, WAIT_SLICE};

const KEY: &str = "rounds";
const OVER_KEY: &str = "rounds_over";

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

/// A `rounds_over` value: a span from 1s to 24h, as a string (`"5m"`).
pub(super) fn over_value(
    value: &Spanned<toml::Value>,
    loc: &Locator,
    probe: Option<ProbeName>,
) -> Result<Duration, PlanError> {
    let key = match probe {
        Some(p) => format!("probes.{p}.{OVER_KEY}"),
        None => OVER_KEY.to_string(),
    };
    let d = value
        .get_ref()
        .as_str()
        .ok_or_else(|| "is not a duration string like \"5m\"".to_string())
        .and_then(|text| parse_over(text).map_err(|e| format!("is out of range: {e}")));
    d.map_err(|why| loc.at(value.span(), format!("{key} {why}")))
}

/// A probe's own `rounds` and `rounds_over`, taken out of its parameters.
pub(super) struct OwnRounds {
    pub rounds: Option<u32>,
    pub over: Option<(Duration, std::ops::Range<usize>)>,
}

/// A probe's plan section without its `rounds` and `rounds_over` keys, and
/// their values.
pub(super) fn split_rounds(
    table: &Spanned<toml::Table>,
    probe: ProbeName,
    loc: &Locator,
) -> Result<(toml::Table, OwnRounds), PlanError> {
    let mut params = table.get_ref().clone();
    let mut own = OwnRounds {
        rounds: None,
        over: None,
    };
    for key in [KEY, OVER_KEY] {
        let Some(value) = params.remove(key) else {
            continue;
        };
        let span = key_span(loc.text, table.span(), key);
        if probe == inventory::NAME {
            return Err(loc.at(
                span,
                format!("probes.{probe}.{key}: the inventory describes the machine and runs once"),
            ));
        }
        let spanned = Spanned::new(span.clone(), value);
        if key == KEY {
            own.rounds = Some(rounds_value(&spanned, loc, Some(probe))?);
        } else {
            own.over = Some((over_value(&spanned, loc, Some(probe))?, span));
        }
    }
    Ok((params, own))
}

/// Where `key = ...` is written inside a table's span (a table's values
/// carry no spans of their own); the table's span when it is not found.
fn key_span(text: &str, table: std::ops::Range<usize>, key: &str) -> std::ops::Range<usize> {
    let body = &text[table.start.min(text.len())..table.end.min(text.len())];
    let mut offset = table.start;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
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

/// A probe's span: its own `rounds_over`, else the plan's when the probe
/// runs more than once. A span on a probe that runs once is refused, at
/// the key that asked for it.
pub(super) fn over_for(
    probe: ProbeName,
    rounds: u32,
    own: Option<(Duration, std::ops::Range<usize>)>,
    all: Option<Duration>,
    loc: &Locator,
) -> Result<Option<Duration>, PlanError> {
    match own {
        Some((_, span)) if rounds < 2 => Err(loc.at(
            span,
            format!(
                "probes.{probe}.{OVER_KEY} spreads rounds over time and needs rounds = 2 or \
                 more, not {rounds}"
            ),
        )),
        Some((over, _)) => Ok(Some(over)),
        None => Ok(all.filter(|_| rounds >= 2)),
    }
}

/// `params` with `rounds = n` (and `rounds_over`) for run.json's copy of
/// the plan, when n > 1.
pub(super) fn with_rounds(params: &Value, n: u32, over: Option<Duration>) -> Value {
    let mut params = params.clone();
    if let (true, Some(map)) = (n > 1, params.as_object_mut()) {
        map.insert(KEY.into(), n.into());
        if let Some(over) = over {
            map.insert(OVER_KEY.into(), HumanDuration(over).to_string().into());
        }
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
        let mut first_started: BTreeMap<ProbeName, Instant> = BTreeMap::new();
        'rounds: for round in 1..=most {
            self.rounds.round.store(round, Ordering::Relaxed);
            for (probe, params) in &self.plan.probes {
                if *probe == inventory::NAME || self.plan.rounds_of(*probe) < round {
                    continue;
                }
                let started = *first_started.entry(*probe).or_insert_with(Instant::now);
                if !self.wait_for_round(*probe, round, started).await {
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

    /// Waits until round `round` of `probe` is due in its `rounds_over`
    /// span, counted from its first round's start, showing the time left;
    /// false when the run is cancelled (also while waiting).
    async fn wait_for_round(&self, probe: ProbeName, round: u32, started: Instant) -> bool {
        let rounds = self.plan.rounds_of(probe);
        let Some(over) = self.plan.rounds_over.get(&probe).copied() else {
            return !self.cancel.is_cancelled();
        };
        let due = started + round_offset(over, rounds, round);
        let mut bar: Option<ProgressBar> = None;
        let ready = loop {
            if self.cancel.is_cancelled() {
                break false;
            }
            let now = Instant::now();
            if now >= due {
                break true;
            }
            let left = due - now;
            let bar = bar.get_or_insert_with(|| {
                let bar = self.progress.add(ProgressBar::new_spinner());
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(waiting_message(
                left,
                &step_label(probe, round, rounds),
                over,
            ));
            tokio::time::sleep(left.min(WAIT_SLICE)).await;
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        ready
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

    #[test]
    fn rounds_over_applies_to_probes_with_rounds_and_a_probes_own_wins() {
        let p = parse(&format!(
            "name = \"t\"\nrounds = 3\nrounds_over = \"2m\"\n{AGENT}[probes.inventory]\n\
             [probes.steal]\nduration = \"2s\"\n[probes.mtu]\nrounds_over = \"30s\"\n\
             [probes.fsync]\ndir = \"/tmp\"\nrounds = 1\n"
        ))
        .unwrap();
        assert_eq!(
            p.rounds_over.get(&steal::NAME),
            Some(&Duration::from_secs(120))
        );
        assert_eq!(
            p.rounds_over.get(&mtu::NAME),
            Some(&Duration::from_secs(30))
        );
        assert_eq!(p.rounds_over.get(&inventory::NAME), None, "runs once");
        assert_eq!(
            p.rounds_over.get(&infraqual_probes::fsync::NAME),
            None,
            "one round: nothing to spread"
        );
        let json = p.as_json();
        assert_eq!(json["probes"]["steal"]["rounds_over"], "2m");
        assert_eq!(json["probes"]["mtu"]["rounds_over"], "30s");
        assert!(json["probes"]["fsync"].get("rounds_over").is_none());
        let mtu_params = &p.probes.iter().find(|(n, _)| *n == mtu::NAME).unwrap().1;
        assert!(
            mtu_params.get("rounds_over").is_none(),
            "not a probe parameter"
        );
    }

    #[test]
    fn bad_rounds_over_names_file_line_column_and_key() {
        for (value, says) in [
            ("\"0s\"", "out of range"),
            ("\"500ms\"", "out of range"),
            ("\"25h\"", "out of range"),
            ("\"soon\"", "out of range"),
            ("300", "not a duration string"),
        ] {
            let e = parse(&format!(
                "name = \"t\"\nrounds = 2\nrounds_over = {value}\n{AGENT}[probes.steal]\n"
            ))
            .unwrap_err();
            assert_eq!(
                (e.file.as_str(), e.line, e.column),
                ("plan.toml", 3, 15),
                "{e}"
            );
            assert!(
                e.message.starts_with("rounds_over ") && e.message.contains(says),
                "{e}"
            );
            let e = parse(&format!(
                "name = \"t\"\n{AGENT}[probes.steal]\nrounds = 2\n  rounds_over = {value}\n"
            ))
            .unwrap_err();
            assert_eq!((e.line, e.column), (7, 3), "{e}");
            assert!(
                e.message.starts_with("probes.steal.rounds_over ") && e.message.contains(says),
                "{e}"
            );
        }
        // A span without rounds to spread, per probe and for all.
        let e = parse(&format!(
            "name = \"t\"\n{AGENT}[probes.steal]\nrounds_over = \"1m\"\n"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.column), (6, 1), "{e}");
        assert!(e.message.contains("needs rounds = 2 or more, not 1"), "{e}");
        let e = parse(&format!(
            "name = \"t\"\nrounds_over = \"1m\"\n{AGENT}[probes.steal]\n"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.column), (2, 15), "{e}");
        assert!(e.message.contains("needs rounds = 2 or more"), "{e}");
        let e = parse(&format!(
            "name = \"t\"\nrounds = 2\n{AGENT}[probes.inventory]\nrounds_over = \"1m\"\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("runs once"), "{e}");
    }
}
