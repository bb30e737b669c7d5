//! compare on runs built from synthetic histograms: the logic, not the
//! measurement (the end-to-end proof with real fsync runs is in
//! tests/compare_cli.rs).

use infraqual_probes::rtt::Kind;
use infraqual_probes::{LatencyHistogram, ProbeResult};
use serde_json::{json, Value};

use super::output::{self, latency_rows};
use super::verdict::ChangeVerdict;
use super::*;
use crate::test_runs::{hist, node, run};

fn fsync(node: &str, center: f64, salt: u64, syncs_per_sec: f64) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, node);
    r.metric("fdatasync", &hist(center, 3000, salt), "ns")
        .unwrap();
    r.fact("syncs_per_sec", syncs_per_sec);
    r.fact("device", "vda");
    r
}

fn opts() -> CompareOptions {
    let mut o = CompareOptions::new("A", "B");
    o.bootstrap.resamples = 300;
    o
}

#[test]
fn same_distribution_is_no_change_and_a_shift_is_regressed() {
    let a = run("a", vec![node("n1", &[], vec![fsync("n1", 2e6, 1, 480.0)])]);
    let same = run("b", vec![node("n1", &[], vec![fsync("n1", 2e6, 2, 470.0)])]);
    let slow = run("c", vec![node("n1", &[], vec![fsync("n1", 3e6, 3, 320.0)])]);

    let c = compare(&a, &same, &opts());
    assert_eq!(c.latencies.len(), 1);
    assert_eq!(
        c.latencies[0].verdict,
        ChangeVerdict::NoChange,
        "{:?}",
        c.latencies[0]
    );
    assert!(!c.regressed());

    let c = compare(&a, &slow, &opts());
    let l = &c.latencies[0];
    assert_eq!(l.verdict, ChangeVerdict::Regressed);
    let m = l.median.unwrap();
    assert!(m.low > 0.0 && (m.low..=m.high).contains(&0.5), "{m:?}");
    assert!(c.regressed());
    // The faster run the other way round is an improvement.
    assert_eq!(
        compare(&slow, &a, &opts()).latencies[0].verdict,
        ChangeVerdict::Improved
    );

    let s = &c.scalars[0];
    assert_eq!(
        (s.fact.as_str(), s.verdict),
        ("syncs_per_sec", ChangeVerdict::NotJudged)
    );
    assert!((s.change.unwrap() - (320.0 / 480.0 - 1.0)).abs() < 1e-9);
}

#[test]
fn verdicts_and_intervals_are_reproducible_and_stable_across_seeds() {
    let a = run("a", vec![node("n1", &[], vec![fsync("n1", 2e6, 1, 1.0)])]);
    let b = run("b", vec![node("n1", &[], vec![fsync("n1", 2.6e6, 5, 1.0)])]);
    let with_seed = |seed| {
        let mut o = opts();
        o.seed = seed;
        compare(&a, &b, &o)
    };
    let first = with_seed(1);
    assert_eq!(
        first.latencies[0].median,
        with_seed(1).latencies[0].median,
        "same seed, same interval"
    );
    for seed in [2, 3, 99] {
        let other = with_seed(seed);
        assert_eq!(other.latencies[0].verdict, first.latencies[0].verdict);
        assert_ne!(
            other.latencies[0].median, first.latencies[0].median,
            "seed is used"
        );
    }
}

#[test]
fn single_nodes_with_different_names_pair_by_probe_and_metric() {
    let a = run(
        "a",
        vec![node(
            "nvme-node",
            &[],
            vec![fsync("nvme-node", 2e5, 1, 4000.0)],
        )],
    );
    let b = run(
        "b",
        vec![node(
            "sata-node",
            &[],
            vec![fsync("sata-node", 4e6, 2, 240.0)],
        )],
    );
    let c = compare(&a, &b, &opts());
    assert_eq!(c.latencies.len(), 1);
    assert_eq!(c.latencies[0].subject, "nvme-node vs sata-node");
    assert!(c
        .pairing_note
        .as_deref()
        .unwrap()
        .contains("paired by probe and metric"));
    assert!(c
        .summary
        .iter()
        .any(|l| l.contains("paired by probe and metric")));
    assert!(c.only_in_a.is_empty() && c.only_in_b.is_empty());
}

#[test]
fn unmatched_metrics_are_listed_not_compared() {
    let mut extra = fsync("n1", 2e6, 1, 1.0);
    extra.metric("write", &hist(5e4, 100, 9), "ns").unwrap();
    let a = run(
        "a",
        vec![node("n1", &[], vec![extra]), node("n2", &[], vec![])],
    );
    let b = run(
        "b",
        vec![
            node("n1", &[], vec![fsync("n1", 2e6, 2, 1.0)]),
            node("n3", &[], vec![]),
        ],
    );
    let c = compare(&a, &b, &opts());
    assert_eq!(c.latencies.len(), 1);
    assert_eq!(c.only_in_a, vec!["fsync write (n1)".to_string()]);
}

/// An rtt result with the key format of the rtt probe.
fn rtt(src: &str, targets: &[(&str, f64)], salt: u64) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, src);
    for (i, (dst, center)) in targets.iter().enumerate() {
        for kind in ["udp", "tcp_rr"] {
            let key = format!("{src}->{dst}/native/{kind}");
            r.metric(&key, &hist(*center, 2000, salt + i as u64), "ns")
                .unwrap();
        }
    }
    r.fact(
        "overlay_overhead_us",
        json!({ format!("{src}->{}", targets[0].0): 12.5 }),
    );
    r
}

#[test]
fn regions_give_a_table_and_the_serial_round_trip_cost() {
    // oslo-1 and oslo-2 are 1 ms apart; frankfurt-1 is 25 ms from both.
    let oslo = [("region", "oslo")];
    let fra = [("region", "frankfurt")];
    let make = |id: &str, far: f64| {
        run(
            id,
            vec![
                node(
                    "oslo-1",
                    &oslo,
                    vec![rtt("oslo-1", &[("oslo-2", 1e6), ("frankfurt-1", far)], 1)],
                ),
                node("oslo-2", &oslo, vec![rtt("oslo-2", &[("oslo-1", 1e6)], 3)]),
                node(
                    "frankfurt-1",
                    &fra,
                    vec![rtt("frankfurt-1", &[("oslo-2", far)], 5)],
                ),
            ],
        )
    };
    let a = make("a", 25e6);
    let b = make("b", 35e6);
    let c = compare(&a, &b, &opts());
    let r = c.regions.as_ref().unwrap();
    let pair =
        r.a.iter()
            .find(|x| x.from == "frankfurt" && x.to == "oslo" && x.kind == Kind::TcpRr)
            .unwrap();
    assert!((pair.p50_ns as f64 / 25e6 - 1.0).abs() < 0.05, "{pair:?}");
    let line = r
        .impact
        .iter()
        .find(|l| l.starts_with("A: 10 serial round trips to oslo from frankfurt"))
        .unwrap_or_else(|| panic!("{:?}", r.impact));
    // 10 * (25 ms - 1 ms) = 240 ms, within the spread of the synthetic data.
    let ms: f64 = line
        .split("cost ")
        .nth(1)
        .unwrap()
        .split(" ms")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((ms - 240.0).abs() < 15.0, "{line}");
    assert!(r.impact.iter().any(|l| l.contains("from oslo to frankfurt cost") && l.contains("more in B than in A")), "{:?}", r.impact);
    assert!(!output::region_rows(&c).is_empty());
    // The far pair regressed, the near pairs did not.
    let far = c
        .latencies
        .iter()
        .find(|l| l.metric == "oslo-1->frankfurt-1/native/tcp_rr")
        .unwrap();
    assert_eq!(far.verdict, ChangeVerdict::Regressed);
    let near = c
        .latencies
        .iter()
        .find(|l| l.metric == "oslo-1->oslo-2/native/udp")
        .unwrap();
    assert_eq!(near.verdict, ChangeVerdict::NoChange);
    assert!(c
        .scalars
        .iter()
        .any(|s| s.fact == "overlay_overhead_us[oslo-1->oslo-2]"));
}

#[test]
fn outputs_hold_tables_charts_and_json() {
    let a = run("a", vec![node("n1", &[], vec![fsync("n1", 2e6, 1, 480.0)])]);
    let b = run("b", vec![node("n1", &[], vec![fsync("n1", 3e6, 2, 320.0)])]);
    let c = compare(&a, &b, &opts());
    let files = output::artifacts(&c).unwrap();
    let get = |name: &str| {
        let f = files
            .iter()
            .find(|f| f.relative_path == name)
            .unwrap_or_else(|| panic!("{name}"));
        String::from_utf8(f.bytes.clone()).unwrap()
    };
    let j: Value = serde_json::from_str(&get("compare.json")).unwrap();
    assert_eq!(j["latencies"][0]["verdict"], "regressed");
    assert!(j["latencies"][0]["median"]["low"].as_f64().unwrap() > 0.0);
    assert_eq!(j["scalars"][0]["verdict"], "not_judged");
    let md = get("compare.md");
    assert!(
        md.contains("| fsync | fdatasync | n1 |") && md.contains("regressed"),
        "{md}"
    );
    let html = get("compare.html");
    assert!(
        html.contains("<svg") && html.contains("<polyline"),
        "CDF drawn inline"
    );
    assert!(
        html.contains("A: A") && html.contains("B: B"),
        "lines labelled"
    );
    // The only URL is the SVG namespace name, which is never fetched.
    let fetches = ["src=\"http", "href=\"http", "url(http", "@import"];
    assert!(!html.contains("<script") && !fetches.iter().any(|f| html.contains(f)));
    assert!(files.iter().any(|f| f.relative_path.ends_with(".png")));
    assert_eq!(latency_rows(&c)[0].len(), output::LATENCY_HEADER.len());
}

#[test]
fn a_summary_line_names_the_quantile_that_decided_its_verdict() {
    // Same body; B's slowest 5 % take four times as long: p99 regresses,
    // the median does not move.
    let body = hist(2e6, 3000, 7);
    let mut tail = body.clone();
    for _ in 0..150 {
        tail.record(8_000_000);
    }
    let result = |h: &LatencyHistogram| {
        let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n1");
        r.metric("fdatasync", h, "ns").unwrap();
        r
    };
    let a = run("a", vec![node("n1", &[], vec![result(&body)])]);
    let b = run("b", vec![node("n1", &[], vec![result(&tail)])]);
    let c = compare(&a, &b, &opts());
    let l = &c.latencies[0];
    assert_eq!(
        (l.median_verdict, l.p99_verdict, l.verdict),
        (
            ChangeVerdict::NoChange,
            ChangeVerdict::Regressed,
            ChangeVerdict::Regressed
        ),
        "{l:?}"
    );
    let line = c
        .summary
        .iter()
        .find(|s| s.starts_with("fsync fdatasync"))
        .expect("a line for fdatasync");
    assert!(line.contains(": p99 "), "{line}");
    assert!(
        line.contains(" — regressed (1 vs 1 round, noise threshold 5.0 %"),
        "{line}"
    );
}

/// An fsync result of several rounds around `centers` ns, 1500 syncs each:
/// each round's histogram in `rounds`, their merge on top, as
/// `--rounds N` writes it.
fn fsync_rounds(node: &str, centers: &[f64], salt: u64) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, node);
    let mut merged = LatencyHistogram::new();
    for (i, center) in centers.iter().enumerate() {
        let h = hist(*center, 1500, salt * 100 + i as u64);
        merged.merge(&h).unwrap();
        let mut metrics = std::collections::BTreeMap::new();
        metrics.insert(
            "fdatasync".to_string(),
            infraqual_probes::MetricSummary::from_histogram(&h, "ns").unwrap(),
        );
        r.rounds.push(infraqual_probes::result::RoundResult {
            round: i as u32 + 1,
            started_at: r.started_at.clone(),
            duration_ms: 1000,
            facts: Default::default(),
            metrics,
        });
    }
    r.metric("fdatasync", &merged, "ns").unwrap();
    r
}

/// Round medians 1.6 .. 2.4 ms: the spread a shared disk shows from run to
/// run; B's rounds are the same spread 8 % slower.
const ROUND_CENTERS: [f64; 5] = [1.6e6, 1.8e6, 2.0e6, 2.2e6, 2.4e6];

fn rounds_pair() -> (crate::bundle::RunRecord, crate::bundle::RunRecord) {
    let slower: Vec<f64> = [2.0e6, 2.4e6, 1.6e6, 2.2e6, 1.8e6]
        .iter()
        .map(|c| c * 1.08)
        .collect();
    (
        run(
            "a",
            vec![node("n1", &[], vec![fsync_rounds("n1", &ROUND_CENTERS, 1)])],
        ),
        run(
            "b",
            vec![node("n1", &[], vec![fsync_rounds("n1", &slower, 2)])],
        ),
    )
}

fn without_rounds(mut r: crate::bundle::RunRecord) -> crate::bundle::RunRecord {
    for n in &mut r.nodes {
        for p in &mut n.results {
            p.rounds.clear();
        }
    }
    r
}

#[test]
fn rounds_put_the_variation_from_run_to_run_into_the_verdict() {
    let (a, b) = rounds_pair();
    // The same samples seen as one run each: a narrow interval, "regressed".
    let once = compare(
        &without_rounds(a.clone()),
        &without_rounds(b.clone()),
        &opts(),
    );
    let l = &once.latencies[0];
    assert_eq!(l.verdict, ChangeVerdict::Regressed, "{l:?}");
    assert!(!l.run_to_run.measured());
    assert!(
        once.summary.iter().any(|s| s
            .starts_with("1 of 1 judged metrics: intervals from the noise within one run only")
            && s.ends_with("run both with --rounds 5")),
        "{:?}",
        once.summary
    );

    let c = compare(&a, &b, &opts());
    let l = &c.latencies[0];
    assert_eq!(l.verdict, ChangeVerdict::NoChange, "{l:?}");
    assert_eq!((l.run_to_run.rounds_a, l.run_to_run.rounds_b), (5, 5));
    assert_eq!(
        l.median.unwrap().point,
        once.latencies[0].median.unwrap().point
    );
    assert!(
        c.summary
            .iter()
            .any(|s| s.contains("fsync fdatasync (n1): median")
                && s.contains("— no change (5 vs 5 rounds, noise threshold 5.0 %")
                && s.contains("; not resolved: the ")),
        "{:?}",
        c.summary
    );
    assert!(
        c.summary.iter().any(|s| s
            .starts_with("every interval includes the variation from run to run (5 vs 5 rounds")),
        "{:?}",
        c.summary
    );

    let files = output::artifacts(&c).unwrap();
    let text = |name: &str| {
        String::from_utf8(
            files
                .iter()
                .find(|f| f.relative_path == name)
                .unwrap()
                .bytes
                .clone(),
        )
        .unwrap()
    };
    let j: Value = serde_json::from_str(&text("compare.json")).unwrap();
    assert_eq!(
        j["latencies"][0]["run_to_run"],
        json!({"rounds_a": 5, "rounds_b": 5})
    );
    assert_eq!(j["latencies"][0]["run_to_run_note"], Value::Null);
    assert!(
        text("compare.md").contains("| 5/5 | no change |"),
        "{}",
        text("compare.md")
    );
    assert!(text("compare.html").contains("<td>5/5</td>"));
    let junit = output::junit::suites(&c);
    let case = &junit[0].cases[0];
    assert!(
        format!("{case:?}").contains("5 vs 5 rounds, noise threshold 5.0 %"),
        "{case:?}"
    );

    let once_json = serde_json::to_value(&once).unwrap();
    assert_eq!(
        once_json["latencies"][0]["run_to_run_note"],
        "run-to-run variation not measured (A and B ran once): run both with --rounds 5"
    );
}

#[test]
fn the_n_way_compare_gives_each_verdict_its_rounds() {
    let (a, b) = rounds_pair();
    let single = without_rounds(b.clone());
    let labels = vec!["a".to_string(), "b".into(), "b-once".into()];
    let m = super::multi::compare_many(&[&a, &b, &single], &labels, &opts());
    let row = m.rows.iter().find(|r| r.metric == "fdatasync").unwrap();
    let r = |i: usize| row.cells[i].run_to_run.unwrap();
    assert_eq!((r(1).rounds_a, r(1).rounds_b), (5, 5));
    assert_eq!((r(2).rounds_a, r(2).rounds_b), (5, 1));
    assert_eq!(row.cells[0].run_to_run, None, "the baseline has no verdict");
    let table = super::multi::output::rows(&m);
    let cells = &table.iter().find(|r| r[1] == "fdatasync").unwrap();
    assert!(
        cells[4].contains("5 vs 5 rounds, noise threshold 5.0 %"),
        "{cells:?}"
    );
    assert!(
        cells[5].contains("5 vs 1 rounds") && cells[5].contains("run B with --rounds 5"),
        "{cells:?}"
    );
}

#[test]
fn a_cpu_bound_context_metric_is_judged_and_shown_but_never_the_verdict() {
    let with_write = |run_id: &str, write_center: f64, salt: u64| {
        let mut r = fsync("n1", 2e6, salt, 480.0);
        r.metric("write", &hist(write_center, 3000, salt + 10), "ns")
            .unwrap();
        run(run_id, vec![node("n1", &[], vec![r])])
    };
    let a = with_write("a", 5e3, 1);
    let b = with_write("b", 10e3, 2);
    let c = compare(&a, &b, &opts());
    let write = c.latencies.iter().find(|l| l.metric == "write").unwrap();
    assert_eq!(write.role, MetricRole::Context);
    assert_eq!(write.verdict, ChangeVerdict::Regressed, "{write:?}");
    assert!(write.context_why.as_deref().unwrap().contains("CPU-bound"));
    let sync = c
        .latencies
        .iter()
        .find(|l| l.metric == "fdatasync")
        .unwrap();
    assert_eq!(
        (sync.role, sync.verdict),
        (MetricRole::Verdict, ChangeVerdict::NoChange)
    );
    assert!(!c.regressed(), "write doubling is not a disk regression");
    assert_eq!(c.count(ChangeVerdict::Regressed), 0);
    assert!(
        c.summary[0]
            .starts_with("1 latency metrics in the verdict (1 more for context only, below)"),
        "{:?}",
        c.summary
    );
    assert!(
        c.summary.iter().any(|l| l
            .starts_with("context only, not in the verdict: fsync write (n1): median ")
            && l.contains("— regressed (a copy into the page cache: CPU-bound")),
        "{:?}",
        c.summary
    );
    let rows = latency_rows(&c);
    let write_row = rows.iter().find(|r| r[1] == "write").unwrap();
    assert_eq!(write_row.last().unwrap(), "regressed, context only");
    let json: Value = serde_json::to_value(&c).unwrap();
    let roles: Vec<&str> = json["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"context") && roles.contains(&"verdict"));
    let suites = output::junit::suites(&c);
    assert!(suites[0]
        .cases
        .iter()
        .all(|t| matches!(t.outcome, crate::export::junit::Outcome::Passed { .. })));
}

#[test]
fn a_no_change_whose_interval_reaches_past_the_threshold_says_it_is_not_resolved() {
    // Identical runs: the interval sits inside ±5 %, a resolved no change.
    let steady = hist(2e6, 3000, 7);
    let result = |h: &LatencyHistogram| {
        let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n1");
        r.metric("fdatasync", h, "ns").unwrap();
        r
    };
    let line_of = |c: &Comparison| {
        c.summary
            .iter()
            .find(|s| s.starts_with("fsync fdatasync"))
            .cloned()
            .expect("a line for fdatasync")
    };
    let a = run("a", vec![node("n1", &[], vec![result(&steady)])]);
    let same = compare(&a, &a, &opts());
    assert_eq!(same.latencies[0].verdict, ChangeVerdict::NoChange);
    assert!(
        !line_of(&same).contains("not resolved"),
        "{}",
        line_of(&same)
    );

    // Few samples, a wide spread: the interval reaches well past ±5 %
    // while the point barely moves, so "no change" must say it is not
    // resolved.
    let sparse = hist(2e6, 12, 3);
    let b = run("b", vec![node("n1", &[], vec![result(&sparse)])]);
    let a = run("a", vec![node("n1", &[], vec![result(&hist(2e6, 12, 4))])]);
    let c = compare(&a, &b, &opts());
    let l = &c.latencies[0];
    assert_eq!(l.verdict, ChangeVerdict::NoChange, "{l:?}");
    let line = line_of(&c);
    assert!(line.contains("; not resolved: the "), "{line}");
    assert!(line.contains("reaches past the threshold"), "{line}");
}
