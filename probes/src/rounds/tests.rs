use serde_json::{json, Map, Value};

use super::*;
use crate::result::{ProbeResult, Status};

fn etcd() -> Profile {
    Profile::builtin("etcd").unwrap()
}

fn hist(values: impl IntoIterator<Item = u64>) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for v in values {
        h.record(v);
    }
    h
}

fn facts(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => panic!("facts must be an object"),
    }
}

fn round_of(probe: ProbeName, duration_ms: u64, fsync_ns: &[u64], f: Value) -> ProbeResult {
    let mut r = ProbeResult::new(probe, "n1");
    r.duration_ms = duration_ms;
    r.metric("fdatasync", &hist(fsync_ns.iter().copied()), "ns")
        .unwrap();
    r.facts = facts(f);
    r
}

#[test]
fn rounds_count_parses_from_one_to_the_maximum_only() {
    assert_eq!(parse_rounds("3"), Ok(3));
    assert_eq!(parse_rounds("1"), Ok(1));
    assert_eq!(parse_rounds("100"), Ok(100));
    for bad in ["0", "101", "-1", "three", "", "2.5", "99999999999"] {
        assert!(parse_rounds(bad).is_err(), "{bad} accepted");
    }
    assert!(check_rounds(0).is_err());
    assert!(check_rounds(-4).is_err());
    assert_eq!(check_rounds(7), Ok(7));
}

#[test]
fn merged_metrics_add_the_histograms_and_read_percentiles_from_the_sum() {
    let a = round_of(crate::fsync::NAME, 1000, &[100_000; 99], json!({}));
    let b = round_of(crate::fsync::NAME, 2000, &[5_000_000; 3], json!({}));
    let merged = merge_common(vec![a.clone(), b.clone()]).unwrap();
    let m = &merged.metrics["fdatasync"];
    assert_eq!(m.count, 102);
    let sum = {
        let mut h = a.metrics["fdatasync"].histogram().unwrap();
        h.merge(&b.metrics["fdatasync"].histogram().unwrap())
            .unwrap();
        h
    };
    assert_eq!(m.p99, sum.value_at_quantile(0.99));
    assert_eq!(m.histogram().unwrap(), sum);
    // Neither round's own p99 is the merged one's: no averaging.
    assert_ne!(m.p99, a.metrics["fdatasync"].p99);
    assert_eq!(merged.duration_ms, 3000);
    assert_eq!(merged.rounds.len(), 2);
    assert_eq!(merged.rounds[0].round, 1);
    assert_eq!(merged.rounds[1].round, 2);
    assert_eq!(merged.rounds[1].metrics["fdatasync"].count, 3);
}

#[test]
fn series_are_placed_end_to_end_and_warnings_name_their_round() {
    let mut a = round_of(crate::fsync::NAME, 2000, &[1], json!({}));
    let mut b = round_of(crate::fsync::NAME, 2000, &[1], json!({}));
    a.series.insert("s".into(), vec![(0.0, 1.0), (1.0, 2.0)]);
    b.series.insert("s".into(), vec![(0.0, 3.0)]);
    a.warn("everywhere");
    b.warn("everywhere");
    b.warn("only here");
    let merged = merge_common(vec![a, b]).unwrap();
    assert_eq!(merged.series["s"], vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]);
    assert_eq!(merged.warnings, vec!["everywhere", "round 2/2: only here"]);
}

#[test]
fn facts_keep_agreement_take_the_median_number_and_merge_objects() {
    let rounds = [
        facts(json!({"dev": "nvme0n1", "n": 5, "mode": "a", "per": {"x": 1, "y": "p"}})),
        facts(json!({"dev": "nvme0n1", "n": 1, "mode": "b", "per": {"x": 9, "y": "p"}})),
        facts(json!({"dev": "nvme0n1", "n": 3, "mode": "c", "per": {"x": 4, "y": "q"}})),
        facts(json!({"dev": "nvme0n1", "n": 100, "per": {"x": 2}})),
    ];
    let refs: Vec<&Map<String, Value>> = rounds.iter().collect();
    let merged = merge_facts(&refs);
    assert_eq!(merged["dev"], "nvme0n1");
    // 1, 3, 5, 100: the lower middle one, a value some round measured.
    assert_eq!(merged["n"], 3);
    assert_eq!(merged["mode"], "c");
    assert_eq!(merged["per"], json!({"x": 2, "y": "q"}));
    assert_eq!(sum_fact(&refs, "n"), Some(json!(109)));
    assert_eq!(sum_fact(&refs, "missing"), None);
}

#[test]
fn shares_are_weighted_by_the_time_each_round_measured() {
    let rounds = [
        facts(json!({"pct": 10.0, "s": 1.0})),
        facts(json!({"pct": 1.0, "s": 9.0})),
    ];
    let refs: Vec<&Map<String, Value>> = rounds.iter().collect();
    let mean = weighted_mean_fact(&refs, "pct", "s").unwrap();
    assert!((mean - 1.9).abs() < 1e-9, "{mean}");
}

#[test]
fn the_default_merge_judges_percentile_checks_on_the_merged_histogram() {
    let profile = etcd();
    let mut a = round_of(crate::fsync::NAME, 1000, &[100_000; 200], json!({}));
    let mut b = round_of(crate::fsync::NAME, 1000, &[20_000_000; 10], json!({}));
    for r in [&mut a, &mut b] {
        let p99 = r.metrics["fdatasync"].p99 as f64;
        r.verdicts.push(profile.judge("fsync.fdatasync.p99", p99));
        r.verdicts.push(Verdict {
            status: Status::Warn,
            ..Verdict::skip("fsync.other", "", "a check on a fact")
        });
    }
    assert_eq!(a.verdicts[0].status, Status::Pass);
    let merged = merge_default(vec![a, b], &profile).unwrap();
    let p99 = &merged.verdicts[0];
    assert_eq!(p99.check, "fsync.fdatasync.p99");
    // 10 of 210 samples at 20 ms: the merged p99 fails.
    assert_eq!(p99.observed, Some(merged.metrics["fdatasync"].p99 as f64));
    assert_eq!(p99.status, Status::Fail);
    let other = &merged.verdicts[1];
    assert_eq!(other.status, Status::Warn);
    assert!(other.note.ends_with("worst of 2 rounds"), "{}", other.note);
}

#[test]
fn fsync_rounds_sum_their_counts_and_judge_the_merged_p99() {
    let profile = etcd();
    let fast = round_of(
        crate::fsync::NAME,
        1000,
        &[200_000; 1000],
        json!({"syncs": 1000, "writes": 1000, "measured_ms": 1000, "syncs_per_sec": 1000.0,
               "device": "sda", "free_bytes_before": 500, "backend_commits": 10,
               "backend_pages_written": 40}),
    );
    let slow = round_of(
        crate::fsync::NAME,
        1000,
        &[8_000_000; 100],
        json!({"syncs": 100, "writes": 100, "measured_ms": 1000, "syncs_per_sec": 100.0,
               "device": "sda", "free_bytes_before": 400, "backend_commits": 9,
               "backend_pages_written": 36}),
    );
    let merged = crate::fsync::NAME
        .descriptor()
        .merge_rounds(vec![fast, slow], &profile)
        .unwrap();
    assert_eq!(merged.facts["syncs"], 1100);
    assert_eq!(merged.facts["writes"], 1100);
    assert_eq!(merged.facts["measured_ms"], 2000);
    assert_eq!(merged.facts["backend_commits"], 19);
    assert_eq!(merged.facts["backend_pages_written"], 76);
    assert_eq!(merged.facts["syncs_per_sec"], 550.0);
    assert_eq!(merged.facts["device"], "sda");
    assert_eq!(merged.facts["free_bytes_before"], 500);
    assert_eq!(merged.metrics["fdatasync"].count, 1100);
    assert_eq!(merged.verdicts.len(), 1);
    let v = &merged.verdicts[0];
    assert_eq!(v.observed, Some(merged.metrics["fdatasync"].p99 as f64));
    assert_eq!(v.status, Status::Warn);
    assert!(v.note.contains("550 syncs/s"), "{}", v.note);
    assert!(merged.facts["etcd_iops_guidance"]
        .as_str()
        .unwrap()
        .contains("550 syncs/s"));
}

#[test]
fn one_round_is_returned_as_it_ran() {
    let r = round_of(crate::fsync::NAME, 10, &[1], json!({"syncs": 1}));
    let merged = crate::fsync::NAME
        .descriptor()
        .merge_rounds(vec![r.clone()], &etcd())
        .unwrap();
    assert_eq!(merged, r);
    assert!(merged.rounds.is_empty());
}

#[test]
fn steal_rounds_weight_shares_by_seconds_and_judge_the_merged_share() {
    let cpu = |steal: f64, hiccups: u64| {
        json!({"steal_pct": steal, "lost_pct": steal, "hiccups": hiccups,
               "hiccup_max_ns": hiccups * 1000, "loop_step_ns": 30 + hiccups})
    };
    let round = |steal: f64, seconds: f64| {
        let mut r = ProbeResult::new(crate::steal::NAME, "n1");
        r.metric("hiccup", &hist([50_000, 60_000]), "ns").unwrap();
        let guest = steal * 4.0;
        r.warn(format!(
            "other tasks in this machine took {guest} % of the measured CPUs"
        ));
        r.facts = facts(json!({
            "steal_pct": steal, "lost_pct": steal, "unexplained_pct": 0.0,
            "guest_wait_pct": guest, "throttled_pct": 0.0,
            "preemptions": 3, "hiccups": 2, "measured_seconds": seconds,
            "steal_counter": "present",
            "per_cpu": {"cpu0": cpu(steal, 2)},
        }));
        r
    };
    let merged = crate::steal::NAME
        .descriptor()
        .merge_rounds(vec![round(20.0, 1.0), round(2.0, 9.0)], &etcd())
        .unwrap();
    assert_eq!(merged.facts["steal_pct"], 3.8);
    assert_eq!(merged.facts["measured_seconds"], 10.0);
    assert_eq!(merged.facts["preemptions"], 6);
    assert_eq!(merged.facts["hiccups"], 4);
    assert_eq!(merged.facts["hiccup_max_ns"], merged.metrics["hiccup"].max);
    let cpu0 = &merged.facts["per_cpu"]["cpu0"];
    assert_eq!(cpu0["steal_pct"], 3.8);
    assert_eq!(cpu0["hiccups"], 4);
    assert_eq!(cpu0["loop_step_ns"], 32);
    assert!(cpu0.get("measured_seconds").is_none());
    assert_eq!(merged.verdicts.len(), 1);
    assert_eq!(merged.verdicts[0].observed, Some(3.8));
    assert_eq!(merged.verdicts[0].status, Status::Pass);
    // The rounds' own warnings give way to what the merged shares say.
    assert_eq!(merged.warnings.len(), 1, "{:?}", merged.warnings);
    assert!(
        merged.warnings[0].starts_with("other tasks in this machine took 15.2 %"),
        "{:?}",
        merged.warnings
    );
}

#[test]
fn mtu_rounds_keep_each_paths_worst_round() {
    let path = |packet: u64, hole: bool| {
        json!({"iface_mtu": 1500, "max_packet": packet, "max_payload": packet - 28,
               "blackhole": hole})
    };
    let round = |a: Value, b: Value| {
        let mut r = ProbeResult::new(crate::mtu::NAME, "n1");
        r.facts = facts(json!({"paths": {"n1->n2/native": a, "n1->n2/overlay": b}}));
        r
    };
    let merged = crate::mtu::NAME
        .descriptor()
        .merge_rounds(
            vec![
                round(path(1500, false), path(1450, false)),
                round(path(1400, false), path(1400, true)),
            ],
            &etcd(),
        )
        .unwrap();
    assert_eq!(merged.facts["paths"]["n1->n2/native"]["max_packet"], 1400);
    assert_eq!(merged.facts["paths"]["n1->n2/overlay"]["blackhole"], true);
    assert_eq!(merged.verdicts[0].check, "mtu.blackhole");
    assert_eq!(merged.verdicts[0].status, Status::Fail);
    assert!(merged.verdicts[0]
        .note
        .contains("n1->n2/overlay carries 1400"));
}

#[test]
fn rtt_rounds_sum_loss_over_every_exchange_sent() {
    let round = |sent: u64, lost: u64| {
        let mut r = ProbeResult::new(crate::rtt::NAME, "n1");
        r.facts = facts(json!({"loss": {"n1->n2/native": {
            "sent": sent, "received": sent - lost, "lost": lost,
            "loss_pct": lost as f64 * 100.0 / sent as f64,
            "late": 0, "duplicates": 0, "errors": 0}}}));
        r
    };
    let merged = crate::rtt::NAME
        .descriptor()
        .merge_rounds(vec![round(1000, 0), round(1000, 30)], &etcd())
        .unwrap();
    let loss = &merged.facts["loss"]["n1->n2/native"];
    assert_eq!(loss["sent"], 2000);
    assert_eq!(loss["lost"], 30);
    assert_eq!(loss["loss_pct"], 1.5);
    let v = merged
        .verdicts
        .iter()
        .find(|v| v.check == "rtt.loss.pct")
        .unwrap();
    assert_eq!(v.observed, Some(1.5));
    assert_eq!(v.status, Status::Fail);
}
