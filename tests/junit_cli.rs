//! `--junit FILE` read back by a JUnit reader (junitparser): qualify gives
//! one testcase per check per node, failures carry observed and threshold,
//! skips are skipped, and the exit code is the command's own. compare gives
//! one testcase per compared measurement.

mod common;
mod junit;

use std::path::Path;

use common::{only_bundle, run};
use serde_json::Value;

fn verdicts(bundle: &Path) -> Vec<(String, String, String)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for node in v["nodes"].as_array().unwrap() {
        let results = node["results"].as_array().unwrap().iter();
        for r in results.chain(std::iter::once(&node["inventory"])) {
            for verdict in r["verdicts"].as_array().unwrap() {
                out.push((
                    node["name"].as_str().unwrap().to_string(),
                    verdict["check"].as_str().unwrap().to_string(),
                    verdict["status"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn qualify_junit_has_one_case_per_check_and_keeps_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let file = tmp.path().join("ci/junit.xml");
    std::fs::create_dir(tmp.path().join("ci")).unwrap();
    // A probe set with a skipped check (rtt needs a second machine) and a
    // profile whose conntrack bound every machine fails.
    let profile = tmp.path().join("strict.toml");
    std::fs::write(
        &profile,
        "name = \"strict\"\n[checks.\"inventory.nf_conntrack_max\"]\n\
         unit = \"entries\"\nfail = 1e12\nbetter = \"higher\"\n",
    )
    .unwrap();
    let mut args = vec![
        "qualify",
        "--probes",
        "inventory,rtt",
        "--out",
        out.to_str().unwrap(),
        "--junit",
        file.to_str().unwrap(),
    ];
    let plain = run(&args);
    assert!(
        matches!(plain.code, 0 | 1),
        "{}{}",
        plain.stdout,
        plain.stderr
    );
    let bundle = only_bundle(&out);
    let junit = junit::read(&file);
    let cases = junit::cases(&junit);
    let expected = verdicts(&bundle);
    assert_eq!(cases.len(), expected.len(), "{junit}");
    for (node, check, status) in &expected {
        let (_, _, kinds) = cases
            .iter()
            .find(|(suite, name, _)| suite == node && name == check)
            .unwrap_or_else(|| panic!("no testcase {node}/{check}: {junit}"));
        let want: &[&str] = match status.as_str() {
            "fail" => &["failure"],
            "skip" => &["skipped"],
            _ => &[],
        };
        assert_eq!(kinds, want, "{check} is {status}");
    }
    assert!(
        cases
            .iter()
            .any(|(_, name, kinds)| name == "rtt.run" && kinds == &["skipped"]),
        "{junit}"
    );
    assert!(plain.stdout.contains(&format!("junit: {}", file.display())));

    std::fs::remove_dir_all(&out).unwrap();
    args.extend(["--profile", profile.to_str().unwrap()]);
    let strict = run(&args);
    let junit = junit::read(&file);
    let conntrack = &junit["suites"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "inventory.nf_conntrack_max")
        .unwrap()["results"];
    if std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        assert_eq!(
            strict.code, 1,
            "a failed check still exits 1: {}",
            strict.stdout
        );
        assert_eq!(conntrack[0]["kind"], "failure", "{junit}");
        let message = conntrack[0]["message"].as_str().unwrap();
        assert!(
            message.contains("observed") && message.contains("threshold"),
            "{message}"
        );
        assert_eq!(junit["failures"], 1, "{junit}");
    } else {
        assert_eq!(conntrack[0]["kind"], "skipped", "{junit}");
    }
}

#[test]
fn compare_junit_has_a_case_per_measurement() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mut bundles = Vec::new();
    for _ in 0..2 {
        bundles.push(common::qualify_fsync_bundle(&disk, &out, &[]));
    }
    let file = tmp.path().join("compare.xml");
    let r = run(&[
        "compare",
        bundles[0].to_str().unwrap(),
        bundles[1].to_str().unwrap(),
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    // Without --out, beside the runs.
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("compare-")
        })
        .expect("compare output beside the runs");
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let junit = junit::read(&file);
    let cases = junit::cases(&junit);
    let latencies = c["latencies"].as_array().unwrap();
    let scalars = c["scalars"].as_array().unwrap();
    assert_eq!(cases.len(), latencies.len() + scalars.len(), "{junit}");
    let regressed = latencies
        .iter()
        .filter(|l| l["verdict"] == "regressed" && l["role"] == "verdict")
        .count();
    assert_eq!(junit["failures"], regressed, "{junit}");
    assert_eq!(r.code, i32::from(regressed > 0));
    assert!(cases
        .iter()
        .any(|(_, name, _)| name.starts_with("fsync fdatasync")));
}
