//! `--rounds N` through the real binary: every round recorded with its own
//! histograms, the merged metrics the sum of the rounds' histograms, the
//! bundle true to the JSON Schema, and bad counts refused at the flag.

mod common;
mod contract;

use common::{assert_one_line_error, probe_result, qualify_fsync_bundle, run};
use infraqual_probes::LatencyHistogram;
use serde_json::Value;

/// Every metric of a result with rounds: each round has it with a
/// histogram, the counts add up, and the merged percentiles are read from
/// the merged histogram (the rounds' histograms added).
fn assert_merged_from_rounds(result: &Value, rounds: usize) {
    let each = result["rounds"].as_array().expect("rounds recorded");
    assert_eq!(each.len(), rounds, "{}", result["probe"]);
    for (i, round) in each.iter().enumerate() {
        assert_eq!(round["round"], i as u64 + 1);
        assert!(round["duration_ms"].as_u64().is_some());
        assert!(round["started_at"].as_str().is_some());
    }
    let metrics = result["metrics"].as_object().unwrap();
    assert!(!metrics.is_empty());
    for (key, merged) in metrics {
        let mut sum = LatencyHistogram::new();
        let mut count = 0;
        for round in each {
            let m = &round["metrics"][key];
            let hdr = m["hdr"]
                .as_str()
                .unwrap_or_else(|| panic!("round {key} hdr"));
            let h = LatencyHistogram::from_base64(hdr).unwrap();
            assert_eq!(h.len(), m["count"].as_u64().unwrap());
            count += m["count"].as_u64().unwrap();
            sum.merge(&h).unwrap();
        }
        assert_eq!(merged["count"].as_u64().unwrap(), count, "{key}");
        let hist = LatencyHistogram::from_base64(merged["hdr"].as_str().unwrap()).unwrap();
        assert_eq!(hist, sum, "{key}: merged histogram is the rounds' sum");
        assert_eq!(merged["p99"].as_u64().unwrap(), sum.value_at_quantile(0.99));
        assert_eq!(merged["p50"].as_u64().unwrap(), sum.value_at_quantile(0.50));
    }
}

/// The start time of round `round` (0-based) of a result.
fn round_start(result: &Value, round: usize) -> &str {
    result["rounds"][round]["started_at"].as_str().unwrap()
}

#[test]
fn qualify_with_three_rounds_interleaves_probes_and_merges_their_histograms() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (disk, out) = (tmp.path().join("disk"), tmp.path().join("runs"));
    std::fs::create_dir(&disk).unwrap();
    let bundle = qualify_fsync_bundle(&disk, &out, &["--rounds", "3", "--probes", "steal,fsync"]);
    let run_json = contract::assert_run_json(&bundle.join("run.json"));
    let fsync = probe_result(&run_json["nodes"][0], "fsync");
    assert_merged_from_rounds(fsync, 3);
    let syncs: u64 = fsync["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["facts"]["syncs"].as_u64().unwrap())
        .sum();
    assert_eq!(fsync["facts"]["syncs"].as_u64(), Some(syncs));
    let verdict = &fsync["verdicts"][0];
    assert_eq!(verdict["check"], "fsync.fdatasync.p99");
    // qualify's paced WAL is judged on each sync as it took: the
    // back-filled `fdatasync` differs once a sync outlasts its 6.7 ms slot.
    assert_eq!(fsync["facts"]["pattern"], "paced");
    assert_eq!(
        verdict["observed"].as_f64(),
        fsync["metrics"]["fdatasync_each"]["p99"].as_f64()
    );
    // A fresh file each round, and none left behind.
    assert_eq!(std::fs::read_dir(&disk).unwrap().count(), 0);

    // Round r of every probe before round r+1 of any (steal's quick round
    // lasts 5 s, so the seconds of the start times tell the order).
    let steal = probe_result(&run_json["nodes"][0], "steal");
    assert_merged_from_rounds(steal, 3);
    for r in 0..3 {
        assert!(round_start(steal, r) <= round_start(fsync, r), "round {r}");
        if r < 2 {
            assert!(
                round_start(fsync, r) <= round_start(steal, r + 1),
                "round {r}"
            );
            assert!(
                round_start(steal, r) < round_start(steal, r + 1),
                "round {r}"
            );
        }
    }
    let plan = std::fs::read_to_string(bundle.join("plan.toml")).unwrap();
    assert!(plan.contains("rounds = 3"), "{plan}");

    // The report: each round's p50/p99 beside the merged distribution, a
    // table of them, and their CSV rows beside the unchanged per-probe CSV.
    let svg = std::fs::read_to_string(bundle.join("plots/fsync-fdatasync.svg")).unwrap();
    assert!(
        svg.contains("p50, p99 of each of 3 rounds"),
        "round points drawn"
    );
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(html.contains("p99 by round"), "the per-round table");
    let csv = std::fs::read_to_string(bundle.join("csv/fsync-rounds.csv")).unwrap();
    let metrics = fsync["metrics"].as_object().unwrap().len();
    assert_eq!(csv.lines().count(), 1 + 3 * metrics, "{csv}");
    let merged_csv = std::fs::read_to_string(bundle.join("csv/fsync.csv")).unwrap();
    assert!(
        merged_csv.starts_with("node,metric,unit,count,"),
        "{merged_csv}"
    );
}

#[test]
fn probe_with_rounds_prints_one_merged_result() {
    let r = run(&[
        "probe",
        "steal",
        "--duration",
        "1s",
        "--interval",
        "500ms",
        "--rounds",
        "2",
        "--json",
    ]);
    assert!(matches!(r.code, 0 | 1), "stderr: {}", r.stderr);
    let result: Value = serde_json::from_str(&r.stdout).unwrap();
    contract::assert_probe_result(&result);
    assert_merged_from_rounds(&result, 2);
    let seconds: f64 = result["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["facts"]["measured_seconds"].as_f64().unwrap())
        .sum();
    let merged = result["facts"]["measured_seconds"].as_f64().unwrap();
    assert!((merged - seconds).abs() < 0.01, "{merged} vs {seconds}");
    assert_eq!(result["verdicts"][0]["check"], "steal.pct");
}

#[test]
fn one_round_records_no_rounds() {
    let r = run(&["probe", "inventory", "--rounds", "1", "--json"]);
    assert!(matches!(r.code, 0 | 1), "stderr: {}", r.stderr);
    let result: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(result.get("rounds").is_none());
}

#[test]
fn bad_round_counts_are_one_line_naming_the_flag_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    for bad in ["0", "three", "101", "-2", "1.5", "4294967296"] {
        let r = run(&[
            "qualify",
            "--probes",
            "inventory",
            "--out",
            out,
            "--rounds",
            bad,
        ]);
        assert_one_line_error(&r, "--rounds");
        let r = run(&["probe", "inventory", "--rounds", bad]);
        assert_one_line_error(&r, "--rounds");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
