//! `infraqual qualify`, `probe` and `report` through the real binary: the
//! bundle's files, the JSON contract and the exit codes.

mod common;
mod contract;

use common::{assert_one_line_error, only_bundle, run};
use serde_json::Value;

#[test]
fn qualify_inventory_writes_a_complete_bundle() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let r = run(&["qualify", "--probes", "inventory", "--out", out_arg]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    // The inventory's one check gets a row: judged where conntrack is
    // loaded, skipped (and still listed) where it is not.
    let row: Vec<&str> = r
        .stdout
        .lines()
        .map(|row| row.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.get(1) == Some(&"inventory.nf_conntrack_max"))
        .unwrap_or_else(|| panic!("no row for inventory.nf_conntrack_max:\n{}", r.stdout));
    assert_eq!(row[0], "local", "{row:?}");
    let has_conntrack = std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists();
    assert_eq!(row.contains(&"SKIP"), !has_conntrack, "{row:?}");
    assert!(r.stdout.contains("verdict: PASS"), "{}", r.stdout);

    let bundle = only_bundle(out.path());
    for f in [
        "plan.toml",
        "run.json",
        "report.html",
        "csv/inventory.csv",
        "csv/verdicts.csv",
    ] {
        assert!(
            bundle.join(f).is_file(),
            "{f} missing in {}",
            bundle.display()
        );
    }
    assert!(bundle.join("plots").is_dir());
    assert!(
        r.stdout
            .contains(&bundle.join("report.html").display().to_string()),
        "the report path is printed"
    );

    let run_json = contract::assert_run_json(&bundle.join("run.json"));
    assert_eq!(run_json["schema_version"], 1);
    assert_eq!(run_json["verdict"], "pass");
    assert!(run_json["run_id"].as_str().unwrap().len() > 10);
    let node = &run_json["nodes"][0];
    assert_eq!(node["name"], "local");
    assert_eq!(node["inventory"]["probe"], "inventory");
    assert_eq!(node["inventory"]["schema_version"], 1);
    assert!(node["errors"].as_array().unwrap().is_empty());
    let plan: toml::Value =
        toml::from_str(&std::fs::read_to_string(bundle.join("plan.toml")).unwrap()).unwrap();
    assert_eq!(plan["profile"].as_str(), Some("etcd"));

    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"answers\"") && html.contains("Checks") && html.contains("Machines")
    );
    assert!(
        html.contains("conntrack table"),
        "facts by their human names"
    );
    assert!(
        html.contains("<summary>Raw facts") && html.contains("nf_conntrack_max"),
        "raw facts folded"
    );
    assert!(!html.contains("<script"), "no scripts in the report");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network references"
    );

    let leftovers: Vec<_> = walk(&bundle)
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn probe_inventory_json_is_the_contract() {
    let r = run(&["probe", "inventory", "--json"]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    contract::assert_probe_result(&v);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["probe"], "inventory");
    assert_eq!(v["node"], "local");
    for key in [
        "started_at",
        "duration_ms",
        "params",
        "facts",
        "metrics",
        "series",
        "verdicts",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    assert!(v["facts"]["cpu_threads"].as_u64().unwrap() >= 1);
}

#[test]
fn report_rerenders_a_bundle_from_run_json_alone() {
    let out = tempfile::tempdir().unwrap();
    let r = run(&[
        "qualify",
        "--probes",
        "inventory",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bundle = only_bundle(out.path());
    contract::assert_run_json(&bundle.join("run.json"));
    let html_before = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    std::fs::remove_file(bundle.join("report.html")).unwrap();
    std::fs::remove_dir_all(bundle.join("csv")).unwrap();
    std::fs::remove_file(bundle.join("plan.toml")).unwrap();

    let r = run(&["report", bundle.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(bundle.join("report.html")).unwrap(),
        html_before,
        "re-rendering is deterministic"
    );
    assert!(bundle.join("csv/inventory.csv").is_file());
}

#[test]
fn unknown_probe_is_one_line_and_exit_2_with_nothing_written() {
    let out = tempfile::tempdir().unwrap();
    let r = run(&[
        "qualify",
        "--probes",
        "inventory,bogus",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_one_line_error(&r, "unknown probe `bogus`");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_out_is_one_line_and_exit_2() {
    let r = run(&[
        "qualify",
        "--probes",
        "inventory",
        "--out",
        "/proc/infraqual-cannot-write",
    ]);
    assert_one_line_error(&r, "/proc/infraqual-cannot-write");
}

#[test]
fn unknown_profile_is_one_line_and_exit_2() {
    let r = run(&["probe", "inventory", "--profile", "no-such-profile"]);
    assert_one_line_error(&r, "no-such-profile");
}

#[test]
fn bad_profile_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("strict.toml");
    std::fs::write(
        &p,
        "name = 'strict'\n[checks.x]\nfail = 'high'\nunit = 'ns'\n",
    )
    .unwrap();
    let r = run(&["probe", "inventory", "--profile", p.to_str().unwrap()]);
    assert_one_line_error(&r, "strict.toml");
}

#[test]
fn report_on_missing_or_corrupt_bundle_is_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["report", dir.path().join("nope").to_str().unwrap()]);
    assert_one_line_error(&r, "run.json");

    std::fs::write(
        dir.path().join("run.json"),
        "{\"schema_version\": 1, \"nodes\": [",
    )
    .unwrap();
    let r = run(&["report", dir.path().to_str().unwrap()]);
    assert_one_line_error(&r, "not a valid run.json");
    assert!(!dir.path().join("report.html").exists());
    assert!(!dir.path().join("csv").exists());
}

#[test]
fn bad_flag_is_one_line_and_exit_2() {
    let r = run(&["qualify", "--frobnicate"]);
    assert_one_line_error(&r, "--frobnicate");
    let r = run(&["probe", "warp-drive"]);
    assert_one_line_error(&r, "warp-drive");
}

#[test]
fn a_failed_check_exits_1_and_the_report_says_fail() {
    // A profile demanding an absurd conntrack table turns the inventory's
    // only check into a failure.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("greedy.toml");
    std::fs::write(
        &p,
        "name = 'greedy'\n[checks.\"inventory.nf_conntrack_max\"]\nfail = 1e15\nunit = 'entries'\nbetter = 'higher'\n",
    )
    .unwrap();
    let out = dir.path().join("runs");
    let r = run(&[
        "qualify",
        "--probes",
        "inventory",
        "--profile",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let has_conntrack = std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists();
    if has_conntrack {
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("verdict: FAIL"));
        let html = std::fs::read_to_string(only_bundle(&out).join("report.html")).unwrap();
        assert!(html.contains("badge fail"));
    } else {
        assert_eq!(r.code, 0, "the check is skipped without conntrack");
    }
    contract::assert_bundles_under(&out);
}
