//! `infraqual compare RUN_A RUN_B RUN_C` on runs with known differences:
//! the slow-disk fixture at 0, 2 and 12 ms per fdatasync, without backing
//! sync so that a sync is FUSE's round trip plus the delay and nothing of
//! the shared disk (whose own latency moved by 0.4 ms between two of the
//! runs while the suite ran beside them, and the 2 ms shift read 1.84). The baseline (0 ms) is best on fdatasync, both others
//! regressed against it with intervals above zero, the 12 ms run further
//! than the 2 ms one; the overall lines and JUnit say the same.

mod common;
mod contract;
mod junit;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{run, slowfs_binary};
use serde_json::Value;

fn qualify_fsync(dir: &Path, out: &Path) -> PathBuf {
    common::qualify_fsync_bundle(dir, out, &[])
}

/// A quick fsync run on the fixture with `delay` added to every sync.
fn qualify_on_fixture(tmp: &Path, out: &Path, delay: Duration) -> PathBuf {
    let mount = iq_slowfs::SlowFsMount::start(&slowfs_binary(), tmp, delay, false)
        .expect("mount iq-slowfs");
    let bundle = qualify_fsync(mount.path(), out);
    drop(mount);
    bundle
}

fn row<'a>(c: &'a Value, metric: &str) -> &'a Value {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} row: {c}"))
}

#[test]
fn three_disks_side_by_side_best_and_verdicts_against_the_first() {
    infraqual_probes::require_caps!(SysAdmin);
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    // All three through the fixture, so only the injected delay differs.
    let zero = qualify_on_fixture(tmp.path(), &runs, Duration::ZERO);
    let two = qualify_on_fixture(tmp.path(), &runs, Duration::from_millis(2));
    let twelve = qualify_on_fixture(tmp.path(), &runs, Duration::from_millis(12));
    assert_eq!(contract::assert_bundles_under(&runs), 3);

    let junit_file = tmp.path().join("junit.xml");
    let r = run(&[
        "compare",
        zero.to_str().unwrap(),
        two.to_str().unwrap(),
        twelve.to_str().unwrap(),
        "--label",
        "0ms",
        "--label",
        "2ms",
        "--label",
        "12ms",
        "--junit",
        junit_file.to_str().unwrap(),
    ]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, 1, "a regression exits 1: {}{}", r.stdout, r.stderr);
    // Without --out the comparison lands beside the runs.
    let out = runs.join("compare-0ms-vs-2ms-vs-12ms");
    for f in ["compare.json", "compare.md", "compare.html"] {
        assert!(out.join(f).is_file(), "{f} in {}", out.display());
    }
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(c["labels"], serde_json::json!(["0ms", "2ms", "12ms"]));

    let f = row(&c, "fdatasync");
    let cells = f["cells"].as_array().unwrap();
    let best: Vec<bool> = cells.iter().map(|c| c["best"].as_bool().unwrap()).collect();
    assert_eq!(best, [true, false, false], "the 0 ms disk is best: {f}");
    let p50: Vec<f64> = cells.iter().map(|c| c["value"].as_f64().unwrap()).collect();
    assert!(
        p50[0] < p50[1] && p50[1] < p50[2],
        "medians in the order of the injected delays: {p50:?}"
    );
    assert!(cells[0]["verdict"].is_null(), "the baseline has no verdict");
    for (i, injected_ns) in [(1, 2e6), (2, 12e6)] {
        assert_eq!(cells[i]["verdict"], "regressed", "{f}");
        let m = &cells[i]["median_change"];
        assert!(m["low"].as_f64().unwrap() > 0.0, "interval above zero: {m}");
        // Ground truth: the median moved by at least the injected delay.
        let shift = p50[i] - p50[0];
        assert!(
            shift >= injected_ns * 0.95,
            "run {i}: median shift {shift} ns for {injected_ns} ns injected"
        );
    }
    let low_12 = cells[2]["median_change"]["low"].as_f64().unwrap();
    let high_2 = cells[1]["median_change"]["high"].as_f64().unwrap();
    assert!(
        low_12 > high_2,
        "12 ms is further from the baseline than 2 ms"
    );

    let overall = c["overall"].as_array().unwrap();
    assert_eq!(overall.len(), 3);
    assert!(overall[0]["regressed"].is_null());
    assert!(overall[1]["regressed"].as_u64().unwrap() >= 1);
    assert!(overall[2]["regressed"].as_u64().unwrap() >= 1);
    assert!(overall[0]["wins"].as_u64().unwrap() >= 1, "{overall:?}");
    assert_eq!(
        overall[2]["wins"], 0,
        "the slowest disk is best nowhere: {overall:?}"
    );
    assert!(r.stdout.contains("0ms: best on"), "{}", r.stdout);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("| 0ms (baseline) | 2ms | 12ms |"), "{md}");

    let junit = junit::read(&junit_file);
    let suites = junit["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2, "one suite per run against the baseline");
    for suite in suites {
        let fdatasync = suite["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with("fsync fdatasync"))
            .unwrap();
        assert_eq!(fdatasync["results"][0]["kind"], "failure", "{suite}");
    }
}

#[test]
fn runs_are_named_by_their_nodes_unless_labelled() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let out = tmp.path().join("runs");
    let bundles: Vec<PathBuf> = ["hetzner", "ovh", "scaleway"]
        .iter()
        .map(|node| common::qualify_fsync_bundle(&disk, &out, &["--node", node]))
        .collect();
    let paths: Vec<&str> = bundles.iter().map(|b| b.to_str().unwrap()).collect();
    let r = run(&["compare", paths[0], paths[1], paths[2]]);
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("hetzner (baseline)") && r.stdout.contains("scaleway: best on"),
        "{}",
        r.stdout
    );
    assert!(out
        .join("compare-hetzner-vs-ovh-vs-scaleway/compare.html")
        .is_file());
    let r = run(&[
        "compare", paths[0], paths[1], paths[2], "--label", "a", "--label", "b",
    ]);
    common::assert_one_line_error(&r, "--label");
}
