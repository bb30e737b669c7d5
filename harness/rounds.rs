//! Rounds (`--rounds N`, `rounds = N` in plans): each probe runs N complete
//! times and the rounds are merged into one result by the probe's own
//! merge (`Probe::merge_rounds`). This keeps one probe's rounds on one node
//! and turns them into the result the bundle records, complete or cut short.

use infraqual_probes::rounds::{parse_rounds, partial_warning};
use infraqual_probes::{ProbeError, ProbeName, ProbeResult, Profile};

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
