//! `infraqual compare` through the real binary on real fsync runs: two runs
//! of five rounds on the same disk are no significant change at the default
//! noise threshold, the slow-disk fixture slowed by 30 % of its own median
//! or by 2 ms is a regression, a single-round run on the fixture against a
//! normal disk is one too (with the note that run-to-run variation was not
//! measured), two soaks compare window by window, and the verdicts do not
//! depend on the seed. Plus baselines and bad input.

mod common;
mod contract;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_one_line_error, infraqual, only_bundle, run, slowfs_binary};
use serde_json::Value;

/// A quick fsync qualify of `dir` into `out`, as a child process. The
/// recipe (back to back) rather than the paced WAL qualify judges by
/// default: these tests measure compare's statistics against a known
/// change, and the recipe gives 1,800 syncs a round in under a second where
/// the paced mode's quick round gives 450 in 3 s.
fn qualify_fsync(dir: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = infraqual();
    cmd.args(["qualify", "--quick", "--probes", "fsync"])
        .args(["--fsync-mode", "fio-etcd", "--dir"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

fn finish(mut cmd: Command) -> PathBuf {
    bundle_of(cmd.output().expect("infraqual runs"))
}

/// The bundle a finished qualify wrote, from the report path it printed.
fn bundle_of(out: std::process::Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 1 is a failed check (the slow disk may fail etcd's bound): still a run.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "qualify could not run: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .expect("qualify prints the report path");
    Path::new(report).parent().unwrap().to_path_buf()
}

fn compare_json(a: &Path, b: &Path, out: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["compare", a.to_str().unwrap(), b.to_str().unwrap()];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    let r = run(&args);
    let json = std::fs::read_to_string(out.join("compare.json"))
        .unwrap_or_else(|e| panic!("compare.json: {e}; stderr: {}", r.stderr));
    (r.code, serde_json::from_str(&json).unwrap(), r.stdout)
}

fn verdicts(c: &Value) -> Vec<(String, String)> {
    c["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["metric"].as_str().unwrap().to_string(),
                l["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn fdatasync(c: &Value) -> &Value {
    c["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["metric"] == "fdatasync")
        .expect("fdatasync was compared")
}

/// The fixture test measures a sync of a few µs on one CPU, where any other
/// process that runs there adds its time slices to the syncs of whichever
/// rounds it overlaps; the other tests here run compares (seconds of
/// bootstrap on every CPU) and probes. So the fixture test runs alone
/// (write), the others beside each other (read). Test binaries run one
/// after another, so this is all the suite puts beside it.
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn cpu_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn cpu_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rounds per run in these tests: the count compare recommends.
const ROUNDS: &str = "5";
/// Rounds a side for the detection test (see there).
const DETECTION_ROUNDS: &str = "9";

/// Runs both commands at the same time; returns B's bundle once both ended.
fn at_the_same_time(a: Command, b: Command) -> PathBuf {
    let mut a = a;
    let child_a = a
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = finish(b);
    let out = child_a.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b
}

/// Two fsync runs of five short rounds each in the same directory. One
/// short round's p99 rests on its slowest 18 syncs, so one stall of the
/// shared disk (a journal commit, a neighbour's burst) that lands in one
/// round and not in another moves it by a factor; the median moves with
/// the machine's load. Five rounds put that variation into the intervals
/// (rounds drawn with replacement), so the default noise threshold holds.
/// What the test cannot demand is that the machine's load stays the same
/// between two runs made one after the other: that is a real change of the
/// conditions compare is asked about (measured by
/// scripts/bench-compare-false-alarms on a busy 2-vCPU VM: medians 5-10x
/// apart in 8 of 10 sequential pairs, 0 of 10 false alarms at the same time). So both runs go at the same time, where they see
/// the same conditions, and "no significant change" is the right answer.
#[test]
fn two_runs_of_five_rounds_on_the_same_disk_are_no_significant_change_at_the_default_noise() {
    let _cpu = cpu_shared();
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let (oa, ob) = (tmp.path().join("runs-a"), tmp.path().join("runs-b"));
    let rounds = ["--rounds", ROUNDS];
    let b = at_the_same_time(
        qualify_fsync(&disk, &oa, &rounds),
        qualify_fsync(&disk, &ob, &rounds),
    );
    let a = only_bundle(&oa);

    let mut first: Option<Vec<(String, String)>> = None;
    for seed in ["1", "2", "3"] {
        let out = tmp.path().join(format!("cmp-{seed}"));
        let (code, c, stdout) = compare_json(&a, &b, &out, &["--seed", seed]);
        eprintln!("seed {seed}:\n{stdout}");
        assert_eq!(c["noise"], 0.05, "the default noise threshold");
        assert_eq!(code, 0, "no regression, exit 0: {stdout}");
        let v = verdicts(&c);
        assert!(v.len() >= 2, "fdatasync and write compared: {v:?}");
        assert!(
            v.iter().all(|(_, verdict)| verdict == "no_change"),
            "same disk, same time: {v:?}"
        );
        for l in c["latencies"].as_array().unwrap() {
            assert_eq!(
                l["run_to_run"],
                serde_json::json!({"rounds_a": 5, "rounds_b": 5}),
                "{l}"
            );
        }
        assert!(
            stdout.contains("every interval includes the variation from run to run (5 vs 5 rounds"),
            "{stdout}"
        );
        assert_eq!(c["seed"], seed.parse::<u64>().unwrap());
        match &first {
            None => first = Some(v),
            Some(f) => assert_eq!(f, &v, "verdicts do not depend on the seed"),
        }
    }
    assert_eq!(contract::assert_bundles_under(tmp.path()), 2);
}

/// The slow-disk fixture without backing sync: a sync costs FUSE's round
/// trip plus the injected delay, and nothing of the real disk's stalls.
fn fixture(parent: &Path, delay: Duration) -> iq_slowfs::SlowFsMount {
    iq_slowfs::SlowFsMount::start(&slowfs_binary(), parent, delay, false).expect("mount iq-slowfs")
}

fn fdatasync_p50_ns(bundle: &Path) -> u64 {
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    run["nodes"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "fsync")
        .and_then(|r| r["metrics"]["fdatasync"]["p50"].as_u64())
        .expect("fdatasync p50")
}

/// Pins the calling thread, and so every process it starts from now on,
/// to the last CPU it may run on.
fn pin_this_thread_and_its_children_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; both calls get the
    // set's real size and act on the calling thread (tid 0) only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
        let last = (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("an allowed CPU");
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(last, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
    }
}

/// The fixture undelayed against delayed by 30 % of its own undelayed
/// fdatasync p50 (measured here first: FUSE's round trip depends on the
/// machine) and by 2 ms, five rounds a side: fdatasync regressed in both.
///
/// A sync on the fixture is two hand-offs between the prober and the FUSE
/// daemon. On a VM a hand-off to another vCPU that sits idle waits for the
/// hypervisor to wake it, and whether it sits idle comes and goes with the
/// machine's load: measured here, whole rounds fell into two modes (medians
/// about 10 µs and 40 µs), which no comparison of five rounds can see a
/// 30 % change through, and which is the VM's scheduler, not the disk the
/// fixture stands for. With the prober and the daemon on one CPU every
/// hand-off stays on it, and a sync costs what the fixture says: FUSE's
/// round trip plus the delay (medians within a few % from round to round).
#[test]
fn the_fixture_slowed_by_thirty_percent_of_its_own_median_or_by_2ms_is_regressed() {
    infraqual_probes::require_caps!(SysAdmin);
    let _cpu = cpu_alone();
    pin_this_thread_and_its_children_to_one_cpu();
    let tmp = tempfile::tempdir().unwrap();
    let plain = fixture(tmp.path(), Duration::ZERO);
    let calibration = finish(qualify_fsync(
        plain.path(),
        &tmp.path().join("calibration"),
        &[],
    ));
    let p50_ns = fdatasync_p50_ns(&calibration);
    // The fixture takes whole microseconds.
    let delay_us = ((p50_ns as f64 * 0.3 / 1000.0).round() as u64).max(1);
    eprintln!("undelayed fixture p50 {p50_ns} ns: delay {delay_us} µs");
    // Nine rounds, not five: the interval is widened by Student's t for
    // the rounds behind it, and at five a side one round that caught the
    // machine busy stretched it to [+0.2 %, +27.5 %] around a +24.5 %
    // change (seen once in a fresh-clone run while another build ran).
    // More rounds are what the widening asks of a user on a noisy machine.
    let rounds = ["--rounds", DETECTION_ROUNDS];
    let a = finish(qualify_fsync(
        plain.path(),
        &tmp.path().join("runs-0"),
        &rounds,
    ));
    drop(plain);
    let slower = fixture(tmp.path(), Duration::from_micros(delay_us));
    let b = finish(qualify_fsync(
        slower.path(),
        &tmp.path().join("runs-30pct"),
        &rounds,
    ));
    drop(slower);
    let two_ms = fixture(tmp.path(), Duration::from_millis(2));
    let c = finish(qualify_fsync(
        two_ms.path(),
        &tmp.path().join("runs-2ms"),
        &rounds,
    ));
    drop(two_ms);

    for (b, what) in [(&b, "+30 %"), (&c, "+2 ms")] {
        let out = tmp
            .path()
            .join(format!("cmp-{}", b.file_name().unwrap().to_string_lossy()));
        let (code, c, stdout) = compare_json(&a, b, &out, &["--seed", "1"]);
        eprintln!("{what}:\n{stdout}");
        assert_eq!(code, 1, "{what}: a regression exits 1: {stdout}");
        let f = fdatasync(&c);
        assert_eq!(f["verdict"], "regressed", "{what}: {f}");
        assert_eq!(f["run_to_run"]["rounds_a"], 9);
        assert_eq!(f["run_to_run"]["rounds_b"], 9);
        assert!(
            stdout.contains("— regressed (9 vs 9 rounds, noise threshold 5.0 %)"),
            "{stdout}"
        );
    }
}

#[test]
fn slow_disk_fixture_against_a_normal_disk_is_regressed_with_an_interval_excluding_zero() {
    infraqual_probes::require_caps!(SysAdmin);
    let _cpu = cpu_shared();
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    // Every fdatasync on the fixture sleeps 2 ms more than the backing disk.
    // Both runs go at the same time: the shared disk's own latency moves by
    // a factor between runs made one after the other (measured: p50 3.9 ms
    // in one run on a loaded machine, 1.9 ms a minute later), and that
    // change is not the 2 ms this test injects.
    let mount =
        iq_slowfs::SlowFsMount::start(&slowfs_binary(), tmp.path(), Duration::from_millis(2), true)
            .expect("mount iq-slowfs");
    let normal_run = qualify_fsync(&disk, &runs, &["--save-baseline", "normal-disk"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let slow = finish(qualify_fsync(mount.path(), &runs, &[]));
    let normal = bundle_of(normal_run.wait_with_output().unwrap());
    drop(mount);
    assert!(runs.join("baselines/normal-disk/run.json").is_file());
    assert!(runs.join("baselines/normal-disk/plan.toml").is_file());

    let mut first = None;
    for seed in ["1", "2", "3"] {
        let out = tmp.path().join(format!("cmp-{seed}"));
        let (code, c, stdout) = compare_json(
            &normal,
            &slow,
            &out,
            &["--seed", seed, "--label-a", "disk", "--label-b", "slowfs"],
        );
        eprintln!("seed {seed}:\n{stdout}");
        assert_eq!(code, 1, "a regression exits 1 for CI: {stdout}");
        let f = fdatasync(&c);
        assert_eq!(f["verdict"], "regressed");
        let m = &f["median"];
        let low = m["low"].as_f64().unwrap();
        assert!(low > 0.0, "the interval excludes zero: {m}");
        // Ground truth: B's median is A's plus the injected 2 ms (FUSE adds
        // its own round trip on top, so only a lower bound is exact).
        let shift_ns = f["b"]["p50"].as_f64().unwrap() - f["a"]["p50"].as_f64().unwrap();
        assert!(
            shift_ns >= 1.9e6,
            "median shift {shift_ns} ns >= the injected 2 ms"
        );
        assert!(stdout.contains("regressed"));
        assert_eq!(
            f["run_to_run_note"],
            "run-to-run variation not measured (A and B ran once): run both with --rounds 5",
            "one round a side"
        );
        for file in ["compare.json", "compare.md", "compare.html"] {
            assert!(out.join(file).is_file(), "{file}");
        }
        match &first {
            None => first = Some(verdicts(&c)),
            Some(v) => assert_eq!(v, &verdicts(&c), "verdicts do not depend on the seed"),
        }
    }

    // The same through the saved baseline (looked up beside the run).
    let r = run(&[
        "compare",
        "--baseline",
        "normal-disk",
        slow.to_str().unwrap(),
        "--out",
        tmp.path().join("cmp-baseline").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("A = baseline-normal-disk"),
        "{}",
        r.stdout
    );
    assert_eq!(contract::assert_bundles_under(&runs), 3);
}

/// A soak of `windows` windows of 4 s on `disk` into `dir`/runs, started.
fn soak(dir: &Path, disk: &Path, windows: u32) -> std::process::Child {
    infraqual()
        .args([
            "soak",
            "--for",
            &format!("{}s", 4 * windows),
            "--every",
            "4s",
        ])
        .arg("--dir")
        .arg(disk)
        .args(["--log", "soak.hlog", "--out", "runs"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("infraqual soak starts")
}

/// Two short soaks (three 4 s windows each, at the same time on one disk)
/// compare like two runs of three rounds: every window is a round, so the
/// intervals include the variation from window to window.
#[test]
fn two_soaks_compare_with_their_windows_as_rounds() {
    let _cpu = cpu_shared();
    let tmp = tempfile::tempdir().unwrap();
    let mut bundles = Vec::new();
    let children: Vec<(PathBuf, std::process::Child)> = ["soak-a", "soak-b"]
        .iter()
        .map(|name| {
            let dir = tmp.path().join(name);
            let disk = dir.join("disk");
            std::fs::create_dir_all(&disk).unwrap();
            let child = soak(&dir, &disk, 3);
            (dir, child)
        })
        .collect();
    for (dir, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "soak: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        bundles.push(only_bundle(&dir.join("runs")));
    }
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(bundles[0].join("run.json")).unwrap())
            .unwrap();
    let fsync = run_json["nodes"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "fsync")
        .expect("the soak measured fsync");
    assert_eq!(
        fsync["rounds"].as_array().unwrap().len(),
        3,
        "a round per window"
    );

    let out = tmp.path().join("cmp");
    let (code, c, stdout) = compare_json(&bundles[0], &bundles[1], &out, &["--seed", "1"]);
    assert!(matches!(code, 0 | 1), "{stdout}");
    let f = fdatasync(&c);
    assert_eq!(f["run_to_run"]["rounds_a"], 3, "{f}");
    assert_eq!(f["run_to_run"]["rounds_b"], 3, "{f}");
    assert_eq!(f["run_to_run_note"], Value::Null);
    let steal = c["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["probe"] == "steal")
        .collect::<Vec<_>>();
    assert!(!steal.is_empty(), "steal compared too: {stdout}");
    assert!(steal.iter().all(|l| l["run_to_run"]["rounds_a"] == 3));
    assert!(
        stdout.contains("every interval includes the variation from run to run (3 vs 3 rounds"),
        "{stdout}"
    );
    for side in ["soak-a", "soak-b"] {
        contract::assert_bundles_under(&tmp.path().join(side).join("runs"));
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().to_str().unwrap();
    let r = run(&["compare", empty, empty]);
    assert_one_line_error(&r, "no run.json");
    let r = run(&["compare", empty]);
    assert_one_line_error(&r, "two runs");
    let r = run(&["compare", "--baseline", "nope", empty]);
    assert_one_line_error(&r, "baseline \"nope\"");
    let r = run(&["compare", "--baseline", "../up", empty]);
    assert_one_line_error(&r, "baseline name");
    let r = run(&["compare", empty, empty, "--noise", "lots"]);
    assert_one_line_error(&r, "--noise");
    let r = run(&[
        "qualify",
        "--probes",
        "inventory",
        "--save-baseline",
        "a/b",
        "--out",
        empty,
    ]);
    assert_one_line_error(&r, "baseline name");
}
