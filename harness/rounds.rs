//! Rounds (`--rounds N`, `rounds = N` in plans): each probe runs N complete
//! times and the rounds are merged into one result by the probe's own
//! merge (`Probe::merge_rounds`). This keeps one probe's rounds on one node
//! and turns them into the result the bundle records, complete or cut short.
//! With `--over DURATION` the rounds are spread across that span
//! (probes/src/rounds/spacing.rs) and [`Spacing`] waits for each.

use std::time::{Duration, Instant};

use infraqual_probes::rounds::spacing::{check_over_rounds, parse_over, round_offset};
use infraqual_probes::rounds::{parse_rounds, partial_warning};
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{CancelToken, ProbeError, ProbeName, ProbeResult, Profile};

use crate::progress::StepProgress;

/// clap's parser for `--rounds`: its error names the flag for it.
pub fn parse_rounds_flag(text: &str) -> Result<u32, String> {
    parse_rounds(text)
}

/// The progress label of one step: `fsync round 2/3`, or the probe alone
/// when it runs once.
pub fn step_label(probe: ProbeName, round: u32, rounds: u32) -> String {
    if rounds > 1 {
        format!("{probe} round {round}/{rounds}")
    } else {
        probe.to_string()
    }
}

/// The rounds of one probe on one node as they complete.
#[derive(Debug)]
pub struct RoundsOf {
    pub probe: ProbeName,
    pub asked: u32,
    done: Vec<ProbeResult>,
}

impl RoundsOf {
    pub fn new(probe: ProbeName, asked: u32) -> Self {
        RoundsOf {
            probe,
            asked,
            done: Vec::new(),
        }
    }

    pub fn push(&mut self, result: ProbeResult) {
        self.done.push(result);
    }

    pub fn completed(&self) -> usize {
        self.done.len()
    }

    /// Every round asked for has run.
    pub fn is_complete(&self) -> bool {
        self.done.len() >= self.asked as usize
    }

    /// The merged result of every completed round; when fewer than asked
    /// ran, a warning says how many and why. None when no round completed.
    pub fn merge(
        &mut self,
        profile: &Profile,
        cut_short: Option<&str>,
    ) -> Option<Result<ProbeResult, ProbeError>> {
        if self.done.is_empty() {
            return None;
        }
        let ran = self.done.len();
        let rounds = std::mem::take(&mut self.done);
        let merged = self.probe.descriptor().merge_rounds(rounds, profile);
        Some(merged.map(|mut result| {
            if ran < self.asked as usize {
                let why = cut_short.unwrap_or("the run stopped");
                result.warn(partial_warning(ran, self.asked, why));
            }
            result
        }))
    }
}

/// clap's parser for `--over`: its error names the flag for it.
pub fn parse_over_flag(text: &str) -> Result<Duration, String> {
    parse_over(text)
}

/// `--over` without rounds to spread is refused before anything runs.
pub fn check_over_flag(over: Option<Duration>, rounds: u32) -> anyhow::Result<()> {
    if let Some(over) = over {
        check_over_rounds(rounds).map_err(|why| {
            anyhow::anyhow!("--over {}: {why} (add --rounds 5)", HumanDuration(over))
        })?;
    }
    Ok(())
}

/// When each round of a probe is due: at once without `--over`, else its
/// place in the span, counted from when the first round started.
#[derive(Debug)]
pub struct Spacing {
    started: Instant,
    over: Option<Duration>,
    rounds: u32,
}

impl Spacing {
    pub fn start(over: Option<Duration>, rounds: u32) -> Self {
        Spacing {
            started: Instant::now(),
            over,
            rounds,
        }
    }

    /// Waits until round `round` is due, showing the time left on
    /// `progress`; false when cancelled while waiting (Ctrl-C stops the
    /// wait, and the rounds that completed are kept by the caller).
    pub fn wait_for(
        &self,
        round: u32,
        label: &str,
        cancel: &CancelToken,
        progress: &StepProgress,
    ) -> bool {
        let Some(over) = self.over else {
            return !cancel.is_cancelled();
        };
        let due = self.started + round_offset(over, self.rounds, round);
        loop {
            if cancel.is_cancelled() {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            let left = due - now;
            progress.step(waiting_message(left, label, over));
            std::thread::sleep(left.min(WAIT_SLICE));
        }
    }
}

/// How often a wait between rounds looks at Ctrl-C and updates the time
/// left (here and in the coordinator).
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What a wait for a spread round shows: `waiting 12s for fsync round 3/5
/// (rounds spread over 1m)`.
pub fn waiting_message(left: Duration, label: &str, over: Duration) -> String {
    format!(
        "waiting {} for {label} (rounds spread over {})",
        HumanDuration(Duration::from_secs(left.as_secs_f64().ceil() as u64)),
        HumanDuration(over)
    )
}
