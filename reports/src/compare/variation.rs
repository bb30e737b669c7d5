//! Whether a verdict's interval includes the variation from run to run:
//! only when both runs had several rounds of the measurement (levels.rs).
//! Otherwise the interval holds the noise within one run alone, and a
//! reader has to be told, with what to run instead.

use serde::Serialize;

/// The rounds a comparison asks for when a side had one: the benchmark
/// (scripts/bench-compare-false-alarms) measures false alarms and detection
/// at this count.
pub const RECOMMENDED_ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RunToRun {
    /// Rounds of the measurement in A and in B (1: measured once).
    pub rounds_a: usize,
    pub rounds_b: usize,
}

impl RunToRun {
    /// Both sides had at least two rounds: the interval includes the
    /// variation between runs.
    pub fn measured(self) -> bool {
        self.rounds_a >= 2 && self.rounds_b >= 2
    }

    /// The side(s) measured once, as "A", "B" or "A and B".
    fn single_sides(self) -> Option<&'static str> {
        match (self.rounds_a < 2, self.rounds_b < 2) {
            (true, true) => Some("A and B"),
            (true, false) => Some("A"),
            (false, true) => Some("B"),
            (false, false) => None,
        }
    }

    /// `5 vs 5 rounds`
    pub fn rounds_text(self) -> String {
        let plural = if self.rounds_a == 1 && self.rounds_b == 1 {
            "round"
        } else {
            "rounds"
        };
        format!("{} vs {} {plural}", self.rounds_a, self.rounds_b)
    }

    /// What to do so that the interval includes run-to-run variation;
    /// None when it does.
    pub fn advice(self) -> Option<String> {
        let sides = self.single_sides()?;
        let which = if sides == "A and B" { "both" } else { sides };
        Some(format!(
            "run-to-run variation not measured ({sides} ran once): run {which} with --rounds {RECOMMENDED_ROUNDS}"
        ))
    }

    /// The table cell: `5/5` or `1/1, not measured`.
    pub fn cell(self) -> String {
        let counts = format!("{}/{}", self.rounds_a, self.rounds_b);
        if self.measured() {
            counts
        } else {
            format!("{counts}, run-to-run not measured")
        }
    }

    /// What decided a verdict, for a summary line: `5 vs 5 rounds, noise
    /// threshold 5.0 %`, and what to run when that was not enough.
    pub fn decided_by(self, noise: f64) -> String {
        let mut text = format!(
            "{}, noise threshold {:.1} %",
            self.rounds_text(),
            noise * 100.0
        );
        if let Some(sides) = self.single_sides() {
            let which = if sides == "A and B" { "both" } else { sides };
            text.push_str(&format!(
                "; run-to-run variation not measured: run {which} with --rounds {RECOMMENDED_ROUNDS}"
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_need_rounds() {
        let both = RunToRun {
            rounds_a: 5,
            rounds_b: 3,
        };
        assert!(both.measured());
        assert_eq!(both.advice(), None);
        assert_eq!(both.cell(), "5/3");
        assert_eq!(
            both.decided_by(0.05),
            "5 vs 3 rounds, noise threshold 5.0 %"
        );
        let once = RunToRun {
            rounds_a: 1,
            rounds_b: 1,
        };
        assert!(!once.measured());
        assert_eq!(
            once.decided_by(0.05),
            "1 vs 1 round, noise threshold 5.0 %; run-to-run variation not measured: \
             run both with --rounds 5"
        );
        assert_eq!(
            once.advice().unwrap(),
            "run-to-run variation not measured (A and B ran once): run both with --rounds 5"
        );
        let b_once = RunToRun {
            rounds_a: 5,
            rounds_b: 1,
        };
        assert!(b_once.advice().unwrap().ends_with("run B with --rounds 5"));
    }
}
