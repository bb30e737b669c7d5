//! The rtt section's schedule line in report.html: how the coordinator
//! measured the pairs (slots, concurrency, pipelining, peers) and why, from
//! the `schedule` fact its rtt results carry.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bundle::RunRecord;
use crate::markup::escape;

pub fn write(run: &RunRecord, h: &mut String) {
    let summary = run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::rtt::NAME)
        .find_map(|(_, r)| {
            r.facts
                .get("schedule")?
                .get("summary")
                .and_then(Value::as_str)
        });
    if let Some(summary) = summary {
        let _ = write!(
            h,
            "<p class=\"schedule\"><strong>Schedule:</strong> {}</p>",
            escape(summary)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::ProbeResult;

    #[test]
    fn the_schedule_summary_is_shown_escaped() {
        let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        r.fact(
            "schedule",
            serde_json::json!({"summary": "2 measurements in 1 slots <fast>"}),
        );
        let run = crate::test_runs::run("r", vec![crate::test_runs::node("a", &[], vec![r])]);
        let mut h = String::new();
        write(&run, &mut h);
        assert!(
            h.contains("Schedule:</strong> 2 measurements in 1 slots &lt;fast&gt;"),
            "{h}"
        );
    }
}
