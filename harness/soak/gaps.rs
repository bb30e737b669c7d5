//! Where a soak measured nothing: a soak killed and continued (or a fleet
//! soak whose coordinator died and was started again) leaves a stretch of
//! its time axis without intervals. The log shows it in its stamps; the
//! results say it, so an interrupted soak is not read as a whole one.

use std::time::Duration;

use infraqual_probes::units::HumanDuration;
use infraqual_probes::ProbeResult;
use serde_json::json;

use super::hlog::LogContents;
use super::round3;

/// Intervals follow each other within milliseconds; a second's hole is an
/// interruption.
const TOLERANCE_SECONDS: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Where the log stopped, seconds since its StartTime.
    pub at: f64,
    pub seconds: f64,
}

pub fn find(log: &LogContents) -> Vec<Gap> {
    log.intervals
        .windows(2)
        .filter_map(|pair| {
            let end = pair[0].facts.start + pair[0].facts.length;
            let seconds = pair[1].facts.start - end;
            (seconds > TOLERANCE_SECONDS).then_some(Gap {
                at: round3(end),
                seconds: round3(seconds),
            })
        })
        .collect()
}

/// Records the gaps in a soak's result: `soak_gaps` (each `at_seconds`,
/// `seconds`), `soak_gap_seconds` in all, and a warning the report shows.
pub fn annotate(r: &mut ProbeResult, gaps: &[Gap]) {
    if gaps.is_empty() {
        return;
    }
    let total: f64 = gaps.iter().map(|g| g.seconds).sum();
    r.fact(
        "soak_gaps",
        gaps.iter()
            .map(|g| json!({ "at_seconds": g.at, "seconds": g.seconds }))
            .collect::<Vec<_>>(),
    );
    r.fact("soak_gap_seconds", round3(total));
    let each: Vec<String> = gaps
        .iter()
        .map(|g| format!("at +{} for {}", whole(g.at), whole(g.seconds)))
        .collect();
    r.warnings.push(format!(
        "the soak was interrupted {} time{}, {} without measurements in all ({}); the timeline has no intervals there",
        gaps.len(),
        if gaps.len() == 1 { "" } else { "s" },
        whole(total),
        each.join(", ")
    ));
}

fn whole(seconds: f64) -> HumanDuration {
    HumanDuration(Duration::from_secs(seconds.max(0.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::super::hlog::{Interval, IntervalFacts};
    use super::*;

    fn at(start: f64, length: f64) -> Interval {
        Interval {
            facts: IntervalFacts {
                start,
                length,
                ..Default::default()
            },
            series: Vec::new(),
        }
    }

    #[test]
    fn only_a_hole_longer_than_a_second_is_a_gap() {
        let log = LogContents {
            start_time: 0.0,
            intervals: vec![at(0.0, 5.004), at(5.01, 5.0), at(40.01, 5.0), at(45.5, 5.0)],
        };
        assert_eq!(
            find(&log),
            vec![Gap {
                at: 10.01,
                seconds: 30.0
            }]
        );
        let mut r = ProbeResult::new(infraqual_probes::steal::NAME, "n");
        annotate(&mut r, &find(&log));
        assert_eq!(r.facts["soak_gap_seconds"], 30.0);
        assert!(
            r.warnings[0].contains("interrupted 1 time, 30s"),
            "{:?}",
            r.warnings
        );
    }
}
