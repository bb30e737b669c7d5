//! The steal probe against known answers: a competing busy process on the
//! probe's CPU (guest wait ≈ 50 %, steal ≈ 0) and a CFS quota of 30 % of one
//! CPU (lost ≈ 70 %), both on the real scheduler and a real cgroup.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use crate::result::Status;

/// The CPU-saturating tests in this module run one at a time: each would
/// otherwise be the other's noisy neighbour.
static CPU_HOGS: Mutex<()> = Mutex::new(());

fn hog_lock() -> std::sync::MutexGuard<'static, ()> {
    CPU_HOGS.lock().unwrap_or_else(|e| e.into_inner())
}

fn params(duration: &str, cpus: &str) -> Params {
    Params {
        duration: duration.parse().unwrap(),
        cpus: Some(cpus.to_string()),
        ..Params::default()
    }
}

fn fact(r: &ProbeResult, key: &str) -> f64 {
    r.facts[key]
        .as_f64()
        .unwrap_or_else(|| panic!("fact {key} missing: {:?}", r.facts))
}

fn allowed() -> Vec<usize> {
    affinity::allowed_cpus().unwrap()
}

#[test]
fn bad_parameters_are_invalid_param_errors() {
    let invalid = |p: Params| matches!(p.plan(), Err(ProbeError::InvalidParam { .. }));
    assert!(invalid(params("500ms", "0")));
    assert!(invalid(params("2h", "0")));
    assert!(invalid(params("5s", "1023")));
    assert!(invalid(params("5s", "x")));
    assert!(invalid(Params {
        interval: "10s".parse().unwrap(),
        ..params("5s", "0")
    }));
    assert!(invalid(Params {
        threshold: Some("5s".parse().unwrap()),
        ..params("5s", "0")
    }));
    let e = params("5s", "1023").plan().unwrap_err().to_string();
    assert!(e.contains("cpus") && e.contains("allowed"), "{e}");
    let e = crate::registry::run(
        super::NAME,
        &serde_json::json!({"duration": "2s", "bogus": 1}),
        &ProbeContext::local(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
    let plan = Params::default().plan().unwrap();
    assert_eq!(plan.cpus, allowed());
    assert_eq!(plan.duration, Duration::from_secs(30));
}

#[test]
fn cancel_stops_the_busy_threads_promptly() {
    let _hogs = hog_lock();
    let mut ctx = ProbeContext::local();
    let cancelled_at = Instant::now() + Duration::from_millis(300);
    ctx.cancel = ctx.cancel.with_deadline(cancelled_at);
    let cpu = allowed()[0].to_string();
    let e = run(&params("30s", &cpu), &ctx).unwrap_err();
    let returned = Instant::now();
    assert!(matches!(e, ProbeError::Cancelled { .. }), "{e}");
    let latency = returned.saturating_duration_since(cancelled_at);
    assert!(
        latency < Duration::from_secs(1),
        "returned {latency:?} after cancel"
    );
    // The worker threads are joined before returning: none is left spinning.
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?;
            std::fs::read_to_string(t.path().join("comm")).ok()
        });
    assert!(threads.into_iter().all(|c| !c.starts_with("iq-steal-cpu")));
}

#[test]
fn result_carries_the_contract_keys() {
    let _hogs = hog_lock();
    let cpu = allowed()[0];
    let r = run(&params("2s", &cpu.to_string()), &ProbeContext::local()).unwrap();
    assert_eq!(r.probe, NAME);
    for key in [
        "steal_pct",
        "lost_pct",
        "guest_wait_pct",
        "unexplained_pct",
        "hiccup_max_ns",
    ] {
        let v = fact(&r, key);
        assert!(v >= 0.0, "{key} = {v}");
    }
    assert!(fact(&r, "lost_pct") <= 100.0);
    let per_cpu = &r.facts["per_cpu"][format!("cpu{cpu}")];
    assert!(per_cpu["lost_pct"].is_number(), "{per_cpu}");
    assert!(per_cpu["threshold_ns"].as_u64().unwrap() >= hiccup::MIN_THRESHOLD_NS);
    assert!(r.metrics.contains_key("hiccup"));
    for series in ["pct/steal", "pct/lost", "pct/guest_wait"] {
        let points = &r.series[series];
        assert_eq!(points.len(), 2, "{series}: {points:?}");
        assert!((points[1].0 - 2.0).abs() < 0.1, "{series}: {points:?}");
    }
    let v = r.verdicts.iter().find(|v| v.check == CHECK).unwrap();
    assert_ne!(v.status, Status::Skip);
    assert!(r.duration_ms >= 2000);
    assert_eq!(r.params["cpus"], cpu.to_string());
}

/// A busy shell loop pinned to one CPU, killed on drop.
struct BusyNeighbour(Child);

impl BusyNeighbour {
    fn start(cpu: usize) -> BusyNeighbour {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let neighbour = BusyNeighbour(child);
        affinity::pin_to_cpu(neighbour.0.id() as libc::pid_t, cpu).unwrap();
        neighbour
    }
}

impl Drop for BusyNeighbour {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn noisy_neighbour_in_this_machine_is_guest_wait_not_steal() {
    let _hogs = hog_lock();
    let cpu = *allowed().last().unwrap();
    let _neighbour = BusyNeighbour::start(cpu);
    std::thread::sleep(Duration::from_millis(100));
    let r = run(&params("4s", &cpu.to_string()), &ProbeContext::local()).unwrap();
    let (guest, steal, lost) = (
        fact(&r, "guest_wait_pct"),
        fact(&r, "steal_pct"),
        fact(&r, "lost_pct"),
    );
    eprintln!("noisy neighbour on cpu{cpu}: guest wait {guest:.1} %, steal {steal:.1} %, lost {lost:.1} %");
    // Two equal busy tasks share the CPU: ~50 % each. Every other runnable
    // task on that CPU (the rest of the suite, a build) adds its share:
    // with k competitors the probe waits k/(k+1), 67 % for two, 75 % for
    // three, 91 to 92 % with four to six busy loops pinned beside it (the
    // old top of 90 % failed there, attribution intact). That top
    // is the machine's load, which the probe does not claim to know, so the
    // test bounds the wait from below by one neighbour's share and proves
    // the attribution: guest wait, not steal, and the hiccup detector,
    // which measures independently, agreeing.
    assert!(
        (30.0..100.0).contains(&guest),
        "guest wait {guest} % (expected ~50 alone, more on a busy machine)"
    );
    assert!(steal < 5.0, "steal {steal} % (expected ~0)");
    // The hiccup detector sees the same time independently.
    assert!(
        (lost - guest).abs() < 15.0,
        "lost {lost} % vs guest wait {guest} %"
    );
    assert!(fact(&r, "preemptions") > 0.0);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("other tasks in this machine")),
        "{:?}",
        r.warnings
    );
}

const QUOTA_CHILD_ENV: &str = "IQ_STEAL_QUOTA_CHILD_PROCS";
const QUOTA_CHILD_CPU_ENV: &str = "IQ_STEAL_QUOTA_CHILD_CPU";
const RESULT_MARK: &str = "IQ_STEAL_RESULT ";

/// A cpu cgroup with a CFS bandwidth limit, made for one test and removed on
/// drop (its tasks moved back to the parent first).
struct TestCgroup {
    dir: PathBuf,
    parent: PathBuf,
}

impl TestCgroup {
    fn with_quota(quota_us: u64, period_us: u64) -> TestCgroup {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let own = cgroup::own().expect("a mounted cpu cgroup hierarchy");
        // The hierarchy root: it may hold processes and (v2) delegates cpu.
        let parent = own.dirs.last().unwrap().clone();
        let name = format!(
            "iq-{}-{}-steal",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir(&dir).unwrap();
        let guard = TestCgroup { dir, parent };
        match own.version {
            cgroup::CgroupVersion::V1 => {
                std::fs::write(guard.dir.join("cpu.cfs_period_us"), period_us.to_string()).unwrap();
                std::fs::write(guard.dir.join("cpu.cfs_quota_us"), quota_us.to_string()).unwrap();
            }
            cgroup::CgroupVersion::V2 => {
                let max = guard.dir.join("cpu.max");
                assert!(
                    max.exists(),
                    "cpu controller not enabled in {:?}",
                    guard.parent
                );
                std::fs::write(max, format!("{quota_us} {period_us}")).unwrap();
            }
        }
        guard
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if let Ok(pids) = std::fs::read_to_string(self.procs()) {
                for pid in pids.split_whitespace() {
                    let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
                }
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove test cgroup {:?}", self.dir);
    }
}

/// Not a test: the body `run_in_cgroup` runs in a child process placed in
/// its cgroup, started with `--ignored --exact`.
#[test]
#[ignore = "child process entry point, started by run_in_cgroup"]
fn quota_child_entry() {
    let (Ok(procs), Ok(cpu)) = (
        std::env::var(QUOTA_CHILD_ENV),
        std::env::var(QUOTA_CHILD_CPU_ENV),
    ) else {
        panic!(
            "{QUOTA_CHILD_ENV} and {QUOTA_CHILD_CPU_ENV} unset: this entry point runs \
             only as cpu_quota_of_30_percent_reads_back_as_70_percent_lost's child"
        );
    };
    std::fs::write(&procs, std::process::id().to_string()).unwrap();
    let r = run(&params("6s", &cpu), &ProbeContext::local()).unwrap();
    // libtest prints "test ... " on the same line first; the parent splits.
    println!("{RESULT_MARK}{}", serde_json::to_string(&r).unwrap());
}

/// Runs the probe in a child process inside a new cgroup limited to
/// `quota_us` per `period_us`, on `cpu`; returns its result.
fn run_in_cgroup(quota_us: u64, period_us: u64, cpu: usize) -> ProbeResult {
    let cgroup = TestCgroup::with_quota(quota_us, period_us);
    // /proc/self/exe, not current_exe(): the shared target dir may relink
    // this test binary while it runs, and the old inode stays executable.
    let mut child = Command::new("/proc/self/exe")
        .args([
            "--ignored",
            "--exact",
            "steal::tests::quota_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(QUOTA_CHILD_ENV, cgroup.procs())
        .env(QUOTA_CHILD_CPU_ENV, cpu.to_string())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the probe child did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap();
    assert!(status.success(), "child failed: {status}\n{text}");
    let line = text
        .lines()
        .find_map(|l| l.split_once(RESULT_MARK).map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no result from the child:\n{text}"));
    let result: Value = serde_json::from_str(line).unwrap();
    serde_json::from_value(result).unwrap()
}

#[test]
fn cpu_quota_of_30_percent_reads_back_as_70_percent_lost() {
    crate::require_caps!(SysAdmin);
    let _hogs = hog_lock();
    let cpu = allowed()[0];
    let r = run_in_cgroup(30_000, 100_000, cpu);
    let (lost, throttled) = (fact(&r, "lost_pct"), fact(&r, "throttled_pct"));
    let (guest, steal) = (fact(&r, "guest_wait_pct"), fact(&r, "steal_pct"));
    eprintln!(
        "quota 30 % on cpu{cpu}: lost {lost:.1} %, throttled {throttled:.1} %, guest wait \
         {guest:.1} %, steal {steal:.1} %, interrupts {:.1} %",
        fact(&r, "irq_pct")
    );
    eprintln!("facts: {}", Value::Object(r.facts.clone()));
    // The quota caps the probe at 30 ms per 100 ms whatever the load, so at
    // least 70 % is lost (3 points for the hiccup threshold's resolution).
    // One or two other busy tasks on the CPU leave the probe a fair share of
    // 50 or 33 %, still above the quota: lost stays at 70. A third drops its
    // share to 25 % and lost to 75, a fourth to 80: this shared 2-core test
    // machine (parallel tests, other builds) once read 77 %. Above 80 % the
    // reading says more about the machine than about the quota. Below 67 %
    // the quota did not hold for the whole run: seen once (33 %) before this
    // test printed its facts, a defect to chase, not noise to retry away.
    assert!(
        (67.0..=80.0).contains(&lost),
        "lost {lost} % (expected 70, up to 80 under competition)"
    );
    // How the loss splits depends on the competition: alone, the quota
    // throttles the probe for 70 % of the time; with busy neighbours the
    // probe waits for the CPU first and uses less of its quota (seen: 11 %
    // throttled, 59 % guest wait while four builds ran). Throttling is seen
    // at all, and the two together explain the loss.
    assert!(throttled > 5.0, "throttled {throttled} %");
    assert!(
        (throttled + guest - lost).abs() < 5.0,
        "wait {throttled} + {guest} vs lost {lost}"
    );
    assert_eq!(r.facts["cgroup_cpu_limit"]["cpus"], 0.3);
    assert!(
        r.warnings.iter().any(|w| w.contains("cgroup CPU quota")),
        "{:?}",
        r.warnings
    );
    assert!(
        !r.warnings
            .iter()
            .any(|w| w.contains("does not report as steal")),
        "{:?}",
        r.warnings
    );
}
