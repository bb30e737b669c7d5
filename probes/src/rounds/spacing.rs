//! Rounds spread over time (`--over DURATION`, `rounds_over` in plans):
//! N rounds whose starts are spaced evenly across the span, the first at
//! its start and the last at its end, so they sample the drift a second
//! run made minutes later would see, not only the noise of one moment.

use std::time::Duration;

use crate::units::HumanDuration;

/// Shorter than this is no spread at all: rounds run back to back anyway.
pub const MIN_OVER: Duration = Duration::from_secs(1);
/// Longer than this is a soak (`infraqual soak`), not a qualification.
pub const MAX_OVER: Duration = Duration::from_secs(24 * 3600);

/// Parses a span as `--over` and plan files take it: a duration from
/// [`MIN_OVER`] to [`MAX_OVER`].
pub fn parse_over(text: &str) -> Result<Duration, String> {
    let d = text.parse::<HumanDuration>()?.0;
    check_over(d)
}

pub fn check_over(d: Duration) -> Result<Duration, String> {
    if (MIN_OVER..=MAX_OVER).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "{} is outside {} ..= {} (longer is a soak: infraqual soak)",
            HumanDuration(d),
            HumanDuration(MIN_OVER),
            HumanDuration(MAX_OVER)
        ))
    }
}

/// Spreading needs at least two rounds to spread.
pub fn check_over_rounds(rounds: u32) -> Result<(), String> {
    if rounds >= 2 {
        Ok(())
    } else {
        Err(format!(
            "spreads rounds over time and needs 2 or more rounds, not {rounds}"
        ))
    }
}

/// When round `round` (from 1) of `rounds` starts, after the first's start.
pub fn round_offset(over: Duration, rounds: u32, round: u32) -> Duration {
    if rounds < 2 || round <= 1 {
        return Duration::ZERO;
    }
    over.mul_f64(f64::from(round.min(rounds) - 1) / f64::from(rounds - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_start_evenly_from_the_start_to_the_end_of_the_span() {
        let over = Duration::from_secs(60);
        let starts: Vec<u64> = (1..=5)
            .map(|r| round_offset(over, 5, r).as_secs())
            .collect();
        assert_eq!(starts, [0, 15, 30, 45, 60]);
        assert_eq!(round_offset(over, 1, 1), Duration::ZERO);
    }

    #[test]
    fn spans_are_bounded_and_need_two_rounds() {
        assert_eq!(parse_over("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_over(" 2s "), Ok(Duration::from_secs(2)));
        for bad in ["0", "0s", "500ms", "25h", "1000d", "soon", "", "-5s"] {
            assert!(parse_over(bad).is_err(), "{bad}");
        }
        assert!(check_over_rounds(1).is_err());
        assert!(check_over_rounds(2).is_ok());
    }
}
