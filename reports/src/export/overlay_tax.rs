//! The answer to "what does the overlay cost per byte?": per node pair,
//! from the throughput probe's `overlay_tax` (overlay against native on the
//! same pair, measured slice by slice in turns), the throughput lost and
//! the CPU per GB added, with any stalled path named first.

use infraqual_probes::{ProbeResult, Status};
use serde_json::Value;

use super::answers::{Answer, QUESTIONS};
use crate::bundle::RunRecord;

/// Pairs written out in the answer; the section's facts hold every one.
const PAIRS_SHOWN: usize = 6;

pub fn answer(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    let results: Vec<&ProbeResult> = run
        .results()
        .map(|(_, r)| r)
        .filter(|r| r.probe == infraqual_probes::throughput::NAME)
        .collect();
    let stalled: Vec<&String> = results
        .iter()
        .filter_map(|r| r.facts.get("stalls").and_then(Value::as_object))
        .flat_map(|m| m.keys())
        .collect();
    let mut pairs = Vec::new();
    for r in &results {
        let Some(Value::Object(tax)) = r.facts.get("overlay_tax") else {
            continue;
        };
        pairs.extend(tax.iter().filter_map(|(key, t)| pair_text(key, t)));
    }
    if pairs.is_empty() && stalled.is_empty() {
        return None;
    }
    let mut text = String::new();
    if !stalled.is_empty() {
        text.push_str(&format!(
            "Stalled: {} (large packets vanish: see the mtu check). ",
            stalled
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let more = pairs.len().saturating_sub(PAIRS_SHOWN);
    pairs.truncate(PAIRS_SHOWN);
    if !pairs.is_empty() {
        text.push_str(&pairs.join("; "));
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        text.push_str(": overlay against native on the same pair, in alternating slices.");
    }
    Some(Answer {
        question: QUESTIONS[6].1,
        text: text.trim_end().to_string(),
        status: Some(if stalled.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        }),
        section: "probe-throughput".into(),
        chart,
    })
}

/// `a->b (4 connections): VXLAN −12 % throughput, +48 % CPU per GB`
fn pair_text(key: &str, t: &Value) -> Option<String> {
    let (pair, streams) = key.rsplit_once("/tcp")?;
    let throughput = t.get("throughput_pct")?.as_f64()?;
    let cpu = match t.get("cpu_per_gb_pct").and_then(Value::as_f64) {
        Some(pct) => format!("{} CPU per GB", signed_pct(pct)),
        None => "CPU per GB not reported".into(),
    };
    let connections = if streams == "1" {
        "1 connection".to_string()
    } else {
        format!("{streams} connections")
    };
    Some(format!(
        "{pair} ({connections}): VXLAN {} throughput, {cpu}",
        signed_pct(throughput)
    ))
}

fn signed_pct(pct: f64) -> String {
    let sign = if pct < 0.0 { "−" } else { "+" };
    format!("{sign}{:.0} %", pct.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_read_as_throughput_lost_and_cpu_added() {
        let t = json!({"throughput_pct": -12.4, "cpu_per_gb_pct": 48.0, "native_gbit": 1.0, "overlay_gbit": 0.876});
        assert_eq!(
            pair_text("a->b/tcp4", &t).unwrap(),
            "a->b (4 connections): VXLAN −12 % throughput, +48 % CPU per GB"
        );
        let t = json!({"throughput_pct": 1.0, "cpu_per_gb_pct": null});
        assert_eq!(
            pair_text("a->b/tcp1", &t).unwrap(),
            "a->b (1 connection): VXLAN +1 % throughput, CPU per GB not reported"
        );
        assert!(pair_text("a->b", &t).is_none());
    }
}
