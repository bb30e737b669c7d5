//! The etcd disk answer's second sentence: fio's etcd recipe, recorded
//! beside the judged etcd-wal figure as the community reference, with the
//! one reason the two differ.

use infraqual_probes::fsync::reference;
use infraqual_probes::ProbeResult;
use serde_json::Value;

use crate::format;

/// What the judged figure measured, from the result's facts.
pub fn judged_pattern(result: &ProbeResult) -> String {
    let rate = result.facts.get("rate_per_sec").and_then(Value::as_f64);
    match (result.facts.get("mode").and_then(Value::as_str), rate) {
        (Some("fio-etcd"), _) => "fio's etcd recipe: one small write, one fdatasync".into(),
        (Some(_), Some(rate)) => {
            format!("an etcd WAL emulation at {rate:.0} syncs/s: one fdatasync per batch")
        }
        (Some(_), None) => "an etcd WAL emulation: batched entries, one fdatasync per batch".into(),
        (None, _) => "one fdatasync per write".into(),
    }
}

/// " fio's etcd recipe on the same disk: p99 …, mean … (x of the judged
/// mean) — the community reference, not judged: <why>." or nothing when the
/// result has no recipe figure.
pub fn sentence(result: &ProbeResult) -> Option<String> {
    let fact = result.facts.get(reference::FACT)?;
    let ns = |key: &str| fact.get(key).and_then(Value::as_f64);
    let (p99, mean) = (ns("p99_ns")?, ns("mean_ns")?);
    let times = result
        .metrics
        .get("fdatasync")
        .filter(|m| m.mean > 0.0)
        .map(|m| format!(" ({:.2}× the WAL emulation's mean)", mean / m.mean))
        .unwrap_or_default();
    Some(format!(
        " fio's etcd recipe on the same disk reads p99 {}, mean {}{times}: the community \
         reference, not judged ({}).",
        format::value(p99, "ns"),
        format::value(mean, "ns"),
        reference::WHY
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::histogram::LatencyHistogram;
    use serde_json::json;

    fn wal_result(with_reference: bool) -> ProbeResult {
        let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n");
        r.fact("mode", "etcd-wal");
        r.fact("rate_per_sec", 150.0);
        let mut h = LatencyHistogram::new();
        for _ in 0..10 {
            h.record(1_000_000);
        }
        r.metric("fdatasync", &h, "ns").unwrap();
        if with_reference {
            r.fact(
                reference::FACT,
                json!({"mean_ns": 250_000.0, "p50_ns": 240_000, "p99_ns": 400_000,
                       "syncs": 10, "syncs_per_sec": 4000.0, "note": reference::WHY}),
            );
        }
        r
    }

    #[test]
    fn the_recipe_figure_stands_beside_the_judged_one_with_its_ratio_and_reason() {
        let r = wal_result(true);
        let s = sentence(&r).unwrap();
        assert!(s.contains("p99 400 µs, mean 250 µs"), "{s}");
        assert!(
            s.contains("mean 250 µs (0.25× the WAL emulation's mean):"),
            "{s}"
        );
        assert!(s.contains("not judged"), "{s}");
        assert!(s.contains(reference::WHY), "{s}");
        assert_eq!(
            judged_pattern(&r),
            "an etcd WAL emulation at 150 syncs/s: one fdatasync per batch"
        );
    }

    #[test]
    fn the_etcd_disk_answer_carries_the_recipe_sentence() {
        let mut r = wal_result(true);
        r.verdicts.push(infraqual_probes::Verdict {
            check: "fsync.fdatasync.p99".into(),
            status: infraqual_probes::Status::Pass,
            observed: Some(1e6),
            threshold: Some(1e7),
            unit: "ns".into(),
            note: String::new(),
        });
        let run = crate::test_runs::run("etcd", vec![crate::test_runs::node("n", &[], vec![r])]);
        let list = super::super::answers::answers(&run, &[]);
        let disk = &list[0];
        assert!(
            disk.text
                .starts_with("Yes: the 99th-percentile fdatasync is 1.00 ms"),
            "{}",
            disk.text
        );
        assert!(
            disk.text.contains("(an etcd WAL emulation at 150 syncs/s: one fdatasync per batch). fio's etcd recipe on the same disk reads p99 400 µs"),
            "{}",
            disk.text
        );
    }

    #[test]
    fn no_recipe_figure_no_sentence() {
        assert_eq!(sentence(&wal_result(false)), None);
    }
}
