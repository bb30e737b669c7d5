//! `infraqual probe fsync --mode etcd-wal --fio-reference`: fio's etcd
//! recipe recorded beside the judged etcd-wal figure, not judged; and paced
//! runs keep every sync as it took (`fdatasync_each`) beside the back-filled
//! histogram.

mod common;
mod contract;

use common::{assert_one_line_error, run};
use serde_json::Value;

fn disk_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("iq-fsync-ref-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn wal_with_reference<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "probe",
        "fsync",
        "--dir",
        dir,
        "--mode",
        "etcd-wal",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--size",
        "1MiB",
        "--fio-reference",
    ];
    args.extend(extra);
    args
}

#[test]
fn the_recipe_stands_beside_the_judged_wal_figure_unjudged() {
    let dir = disk_dir();
    let path = dir.path().to_str().unwrap();

    let r = run(&wal_with_reference(path, &["--json"]));
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let result: Value = serde_json::from_str(&r.stdout).unwrap();
    contract::assert_probe_result(&result);
    assert_eq!(result["facts"]["mode"], "etcd-wal");
    let checks: Vec<&Value> = result["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["check"])
        .collect();
    assert_eq!(checks, ["fsync.fdatasync.p99"], "the recipe is not judged");
    let recipe = &result["facts"]["fio_recipe"];
    assert_eq!(
        recipe["p99_ns"],
        result["metrics"]["fio_recipe_fdatasync"]["p99"]
    );
    // The recipe writes the same 1 MiB in 2300-byte writes, one sync each.
    assert_eq!(recipe["syncs"], (1u64 << 20) / 2300);
    // Paced: each sync as it took, beside the back-filled histogram.
    let syncs = result["facts"]["syncs"].as_u64().unwrap();
    assert_eq!(result["metrics"]["fdatasync_each"]["count"], syncs);
    assert!(result["metrics"]["fdatasync"]["count"].as_u64().unwrap() >= syncs);

    let r = run(&wal_with_reference(path, &[]));
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("fsync.fio_recipe.p99"))
        .unwrap_or_else(|| panic!("a reference row:\n{}", r.stdout));
    assert!(row.contains(" REF "), "{row}");
    assert!(row.contains("not judged"), "{row}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn fio_reference_beside_the_recipe_itself_is_refused() {
    let dir = disk_dir();
    let r = run(&[
        "probe",
        "fsync",
        "--dir",
        dir.path().to_str().unwrap(),
        "--fio-reference",
    ]);
    assert_one_line_error(&r, "fio_reference");
}

/// `qualify` judges etcd's WAL paced at etcd's rate, with the recipe beside
/// it; `--fsync-mode fio-etcd` judges the recipe alone.
#[test]
fn qualify_judges_the_paced_wal_with_the_recipe_beside_it() {
    let dir = disk_dir();
    let out = tempfile::tempdir().unwrap();
    let bundle = common::qualify_fsync_bundle(dir.path(), out.path(), &[]);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let fsync = common::probe_result(&record["nodes"][0], "fsync");
    assert_eq!(fsync["facts"]["mode"], "etcd-wal");
    assert_eq!(fsync["params"]["rate"], 150.0);
    assert_eq!(fsync["params"]["fio_reference"], true);
    assert!(
        fsync["metrics"]["fdatasync_each"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        fsync["metrics"]["backend_commit"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(fsync["facts"]["fio_recipe"]["p99_ns"].as_u64().is_some());
    let plan = std::fs::read_to_string(bundle.join("plan.toml")).unwrap();
    assert!(plan.contains("mode = \"etcd-wal\""), "{plan}");

    let out = tempfile::tempdir().unwrap();
    let bundle =
        common::qualify_fsync_bundle(dir.path(), out.path(), &["--fsync-mode", "fio-etcd"]);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let fsync = common::probe_result(&record["nodes"][0], "fsync");
    assert_eq!(fsync["facts"]["mode"], "fio-etcd");
    assert!(fsync["facts"].get("fio_recipe").is_none());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

    let r = run(&["qualify", "--fsync-mode", "fast", "--probes", "fsync"]);
    assert_one_line_error(&r, "--fsync-mode");
}
