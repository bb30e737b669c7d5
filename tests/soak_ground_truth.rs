//! A soak with a changing ground truth: a CFS bandwidth quota (20 % of one
//! CPU) is put on the soak's cgroup halfway through. The throttled share's
//! timeline must step up within one interval of that moment, and the check
//! judged on its worst window fails. The suite's version is 24 s in 4 s
//! intervals; scripts/soak-cfs-step runs the same for minutes.

mod common;
mod contract;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{infraqual, only_bundle};
use infraqual::soak::hlog;

const PREFIX: &str = "iq-soak-";

/// A cpu cgroup for one test, removed on drop; one left by a crashed test
/// (its pid gone) is removed by the next.
struct QuotaCgroup {
    dir: PathBuf,
    parent: PathBuf,
    v2: bool,
}

impl QuotaCgroup {
    fn create() -> QuotaCgroup {
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let (parent, v2) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1.to_path_buf(), false)
        } else {
            let root = Path::new("/sys/fs/cgroup");
            let controllers =
                std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
            assert!(
                controllers.split_whitespace().any(|c| c == "cpu"),
                "no cpu cgroup controller (v1 /sys/fs/cgroup/cpu or v2 with +cpu) to put a quota on"
            );
            (root.to_path_buf(), true)
        };
        for entry in std::fs::read_dir(&parent).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let dir = parent.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        QuotaCgroup { dir, parent, v2 }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    fn limit(&self, quota_us: u64, period_us: u64) {
        if self.v2 {
            std::fs::write(self.dir.join("cpu.max"), format!("{quota_us} {period_us}")).unwrap();
        } else {
            std::fs::write(self.dir.join("cpu.cfs_period_us"), period_us.to_string()).unwrap();
            std::fs::write(self.dir.join("cpu.cfs_quota_us"), quota_us.to_string()).unwrap();
        }
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in pids.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_cpu_quota_applied_halfway_steps_the_timeline_and_fails_its_window() {
    infraqual_probes::require_caps!(SysAdmin);
    let dir = tempfile::tempdir().unwrap();
    // The etcd profile plus a threshold on the throttled share, so that the
    // soak judges that timeline per window as well.
    let profile = dir.path().join("quota.toml");
    std::fs::write(
        &profile,
        "name = \"quota\"\n[checks.\"steal.pct\"]\nfail = 10.0\nunit = \"%\"\n\
         [checks.\"steal.throttled_pct\"]\nfail = 20.0\nunit = \"%\"\nnote = \"CFS quota\"\n",
    )
    .unwrap();
    let cgroup = QuotaCgroup::create();
    let (total, every) = (24.0, 4.0);
    let mut soak = infraqual()
        .args([
            "soak",
            "--for",
            "24s",
            "--every",
            "4s",
            "--log",
            "soak.hlog",
        ])
        .args(["--out", "runs", "--profile"])
        .arg(&profile)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cgroup.add(soak.id());
    let log = dir.path().join("soak.hlog");
    let until = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("StartTime")
    {
        assert!(Instant::now() < until, "the soak never started its log");
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = hlog::read(&log).unwrap().start_time;
    let halfway = start + total / 2.0;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64((halfway - now).max(0.0)));
    let applied = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - start;
    cgroup.limit(20_000, 100_000);
    let status = soak.wait().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    drop(cgroup);

    let log = hlog::read(&log).unwrap();
    let timeline: Vec<(f64, f64)> = log
        .intervals
        .iter()
        .map(|i| (i.facts.start, i.facts.values["steal.throttled_pct"]))
        .collect();
    eprintln!("quota applied at +{applied:.1}s; throttled % per interval: {timeline:?}");
    let step = timeline
        .iter()
        .find(|(_, pct)| *pct > 20.0)
        .unwrap_or_else(|| panic!("no throttled interval: {timeline:?}"));
    assert!(
        (step.0 - applied).abs() <= every,
        "the step at +{}s is more than one interval from +{applied:.1}s",
        step.0
    );
    for (at, pct) in &timeline {
        if *at + every <= applied {
            assert!(*pct < 5.0, "throttled before the quota at +{at}s: {pct} %");
        }
    }

    contract::assert_bundles_under(&dir.path().join("runs"));
    let bundle = only_bundle(&dir.path().join("runs"));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap();
    let steal = &run["nodes"][0]["results"][0];
    assert_eq!(steal["probe"], "steal");
    let verdict = |check: &str| {
        steal["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["check"] == check)
            .unwrap_or_else(|| panic!("{check} in {}", steal["verdicts"]))
            .clone()
    };
    assert_eq!(
        verdict("steal.throttled_pct.worst_window")["status"],
        "fail"
    );
    let overall = verdict("steal.throttled_pct");
    eprintln!(
        "overall throttled {} % ({}), worst window {} %",
        overall["observed"],
        overall["status"],
        verdict("steal.throttled_pct.worst_window")["observed"]
    );
    assert_eq!(
        steal["series"]["interval_pct/throttled"]
            .as_array()
            .unwrap()
            .len(),
        log.intervals.len()
    );
}
