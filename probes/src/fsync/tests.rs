//! Whole-probe tests on this machine's real disk: files removed on every
//! path, volatile filesystems refused, device facts equal to /sys.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::result::Status;
use crate::system::read_trimmed;
use crate::units::{ByteSize, HumanDuration};

/// A temporary directory on a disk: the system temp dir unless that is a
/// memory filesystem, else one inside this crate's directory.
fn disk_dir() -> tempfile::TempDir {
    let tmp = std::env::temp_dir();
    let on_disk = locate(&tmp).is_ok_and(|s| s.volatile.is_none());
    let parent = if on_disk {
        tmp
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    };
    tempfile::Builder::new()
        .prefix("iq-fsync-test-")
        .tempdir_in(parent)
        .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn small(dir: &Path) -> Params {
    Params {
        size: ByteSize(256 * 2300),
        ..Params::for_dir(dir)
    }
}

#[test]
fn fio_etcd_run_times_every_write_and_sync_and_removes_its_files() {
    let dir = disk_dir();
    let r = run(&small(dir.path()), &ProbeContext::local()).unwrap();
    assert_eq!(
        entries(dir.path()),
        Vec::<String>::new(),
        "files left behind"
    );
    let sync = &r.metrics["fdatasync"];
    let write = &r.metrics["write"];
    assert_eq!((sync.count, write.count), (256, 256));
    assert!(sync.p50 > 0 && sync.p50 <= sync.p99 && sync.p99 <= sync.max);
    assert_eq!(r.facts["syncs"], 256);
    assert_eq!(r.facts["bytes_written"], 256 * 2300);
    assert_eq!(r.facts["mode"], "fio-etcd");
    assert_eq!(r.facts["pattern"], "back-to-back");
    assert_eq!(r.facts["stopped_by"], "size");
    assert!(r.facts["syncs_per_sec"].as_f64().unwrap() > 0.0);
    let per_second: f64 = r.series["per_second_syncs"].iter().map(|p| p.1).sum();
    assert_eq!(per_second, 256.0);
    assert!(!r.series["per_second_p99_ns"].is_empty());
    let v = &r.verdicts[0];
    assert_eq!(v.check, CHECK);
    assert_eq!(v.observed, Some(sync.p99 as f64));
    assert!(v.note.contains("syncs/s back to back"), "{}", v.note);
    assert_eq!(r.params["block_size"], "2300");
}

#[test]
fn device_facts_match_sys_for_the_test_directory() {
    let dir = disk_dir();
    let r = run(&small(dir.path()), &ProbeContext::local()).unwrap();
    let dev = std::fs::metadata(dir.path()).unwrap().dev();
    let node = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    let Ok(real) = std::fs::canonicalize(&node) else {
        // No block device behind the temp dir (overlay, btrfs subvolume...).
        return;
    };
    if real
        .join("slaves")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        return; // dm/md: resolution through slaves is covered in system::block
    }
    let disk = if real.join("partition").exists() {
        real.parent().unwrap().to_path_buf()
    } else {
        real
    };
    let name = disk.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(r.facts["device"], name.as_str());
    let rotational = read_trimmed(disk.join("queue/rotational")).map(|v| v == "1");
    assert_eq!(r.facts["rotational"].as_bool(), rotational);
    assert_eq!(
        r.facts["write_cache"].as_str(),
        read_trimmed(disk.join("queue/write_cache")).as_deref()
    );
    let mount = crate::system::mounts::mount_of(dir.path()).unwrap();
    assert_eq!(r.facts["fs_type"], mount.fs_type.as_str());
    assert_eq!(r.facts["mount_options"], mount.options.as_str());
    assert_ne!(r.facts["transport"], "");
}

#[test]
fn tmpfs_is_refused_as_invalid_unless_allowed() {
    let shm = Path::new("/dev/shm");
    let is_tmpfs = crate::system::mounts::mount_of(shm).is_ok_and(|m| m.fs_type == "tmpfs");
    if !is_tmpfs {
        eprintln!("SKIPPED: /dev/shm is not tmpfs here");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let e = run(&small(dir.path()), &ProbeContext::local()).unwrap_err();
    match &e {
        ProbeError::InvalidParam { name, reason } => {
            assert_eq!(name, "dir");
            assert!(reason.contains("tmpfs"), "{reason}");
            assert!(reason.contains("allow-volatile"), "{reason}");
        }
        other => panic!("expected InvalidParam, got {other:?}"),
    }
    assert!(entries(dir.path()).is_empty());

    let allowed = Params {
        allow_volatile: true,
        size: ByteSize(20 * 2300),
        ..Params::for_dir(dir.path())
    };
    let r = run(&allowed, &ProbeContext::local()).unwrap();
    assert_eq!(r.facts["volatile"], true);
    assert_eq!(r.facts["fs_type"], "tmpfs");
    assert!(r.warnings.iter().any(|w| w.contains("volatile")));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn bad_parameters_are_rejected_before_anything_is_written() {
    let dir = disk_dir();
    let ctx = ProbeContext::local();
    let invalid = |p: Params| match run(&p, &ctx) {
        Err(ProbeError::InvalidParam { name, .. }) => name,
        other => panic!("expected InvalidParam, got {other:?}"),
    };
    assert_eq!(
        invalid(Params {
            block_size: ByteSize(0),
            ..small(dir.path())
        }),
        "block_size"
    );
    assert_eq!(invalid(Params::for_dir(dir.path().join("missing"))), "dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(invalid(Params::for_dir(&file)), "dir");
    std::fs::remove_file(&file).unwrap();
    assert!(entries(dir.path()).is_empty());
    let e = crate::registry::run(
        super::NAME,
        &serde_json::json!({"dir": dir.path(), "bogus": 1}),
        &ctx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
}

#[test]
fn cancellation_stops_the_loop_and_removes_the_files() {
    let dir = disk_dir();
    let mut ctx = ProbeContext::local();
    ctx.cancel = ctx
        .cancel
        .with_deadline(Instant::now() + Duration::from_millis(200));
    // Paced at 100/s, 10,000 syncs would take 100 s: only a cancel ends it soon.
    let p = Params {
        size: ByteSize(10_000 * 2300),
        rate: Some(100.0),
        ..Params::for_dir(dir.path())
    };
    let started = Instant::now();
    let e = run(&p, &ctx).unwrap_err();
    assert!(matches!(e, ProbeError::Cancelled { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(entries(dir.path()).is_empty(), "files left after cancel");
}

#[test]
fn duration_bounds_a_paced_run_and_the_result_says_so() {
    let dir = disk_dir();
    let p = Params {
        size: ByteSize(10_000 * 2300),
        rate: Some(50.0),
        duration: Some(HumanDuration(Duration::from_millis(600))),
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert_eq!(r.facts["stopped_by"], "duration");
    assert_eq!(r.facts["pattern"], "paced");
    assert_eq!(r.facts["rate_per_sec"], 50.0);
    let syncs = r.facts["syncs"].as_u64().unwrap();
    // 0.6 s at 50/s is 30 ops; a loaded machine may fall behind, never ahead.
    assert!((1..=32).contains(&syncs), "{syncs}");
    assert_eq!(r.metrics["fdatasync_each"].count, syncs);
    assert!(r.metrics["fdatasync"].count >= syncs);
    assert!(r.verdicts[0].note.contains("paced rate"));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn etcd_wal_mode_batches_rolls_segments_over_and_cleans_up() {
    let dir = disk_dir();
    let p = Params {
        mode: Mode::EtcdWal,
        size: ByteSize(2400 * 2300),
        segment_size: ByteSize(1 << 20),
        entries_per_sync: 4,
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert!(entries(dir.path()).is_empty(), "segments left behind");
    assert_eq!(r.facts["mode"], "etcd-wal");
    assert_eq!(r.facts["bytes_written"], 2400 * 2300);
    // 5.52 MB in 1 MiB segments: five cuts, six segments.
    assert_eq!(r.facts["segments"], 6);
    assert_eq!(r.metrics["rollover"].count, 5);
    // One sync per batch of 4 entries (a cut's sync replaces the batch's).
    assert_eq!(r.metrics["fdatasync"].count, 600);
    assert_eq!(r.facts["preallocation"], "fallocate");
    assert_eq!(r.verdicts[0].check, CHECK);
    assert_ne!(r.verdicts[0].status, Status::Skip);
}

#[test]
fn fio_reference_records_the_recipe_beside_the_judged_wal_figure() {
    let dir = disk_dir();
    let p = Params {
        mode: Mode::EtcdWal,
        size: ByteSize(300 * 2300),
        rate: Some(2000.0),
        fio_reference: true,
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert!(entries(dir.path()).is_empty(), "files left behind");
    // The judged figure is the WAL's, each sync as it took (paced, as
    // etcd's histogram counts); the recipe is recorded, not judged.
    assert_eq!(r.facts["mode"], "etcd-wal");
    assert_eq!(r.verdicts.len(), 1);
    assert_eq!(r.verdicts[0].check, CHECK);
    assert_eq!(
        r.verdicts[0].observed,
        Some(r.metrics[JUDGED_PACED_METRIC].p99 as f64)
    );
    assert!(r.verdicts[0].note.contains("each sync as it took"), "{}", r.verdicts[0].note);
    let recipe = &r.metrics[reference::METRIC];
    assert_eq!(recipe.count, 300, "one sync per 2300-byte write of the same size");
    let fact = &r.facts[reference::FACT];
    assert_eq!(fact["syncs"], 300);
    assert_eq!(fact["p99_ns"], recipe.p99);
    assert_eq!(fact["p50_ns"], recipe.p50);
    assert!(fact["mean_ns"].as_f64().unwrap() > 0.0);
    assert_eq!(r.params["fio_reference"], true);
}

#[test]
fn without_fio_reference_there_is_no_recipe_figure() {
    let dir = disk_dir();
    let p = Params {
        mode: Mode::EtcdWal,
        size: ByteSize(50 * 2300),
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert!(!r.metrics.contains_key(reference::METRIC));
    assert!(!r.facts.contains_key(reference::FACT));
    assert!(!r.params.contains_key("fio_reference"));
}

#[test]
fn etcd_wal_mode_commits_the_backend_beside_the_wal_and_records_it_apart() {
    let dir = disk_dir();
    // 400 syncs/s for 0.6 s with a commit every 50 ms: about 12 commits of
    // about 20 puts each.
    let p = Params {
        mode: Mode::EtcdWal,
        size: ByteSize(10_000 * 2300),
        rate: Some(400.0),
        duration: Some(HumanDuration(Duration::from_millis(600))),
        backend_interval: Some(HumanDuration(Duration::from_millis(50))),
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert!(entries(dir.path()).is_empty(), "backend file left behind");
    let commits = r.metrics["backend_commit"].count;
    assert!(commits >= 1, "{commits}");
    assert_eq!(r.facts["backend_commits"], commits);
    assert_eq!(r.facts["backend_interval_ms"], 50);
    // Every commit writes at least one leaf and the three pages it rewrites.
    assert!(r.facts["backend_pages_written"].as_u64().unwrap() >= 4 * commits);
    // The WAL's own figure stays the WAL's: one sample per WAL sync.
    assert_eq!(
        r.metrics["fdatasync_each"].count,
        r.facts["syncs"].as_u64().unwrap()
    );
    assert_eq!(r.params["backend_interval"], "50ms");
}

#[test]
fn a_zero_backend_interval_turns_the_backend_off() {
    let dir = disk_dir();
    let p = Params {
        mode: Mode::EtcdWal,
        size: ByteSize(50 * 2300),
        backend_interval: Some(HumanDuration(Duration::ZERO)),
        ..Params::for_dir(dir.path())
    };
    let r = run(&p, &ProbeContext::local()).unwrap();
    assert!(!r.metrics.contains_key("backend_commit"));
    assert_eq!(r.facts["backend_interval_ms"], 0);
    assert!(!r.facts.contains_key("backend_commits"));
}

#[test]
fn start_at_holds_the_first_sync_until_then_and_a_late_start_says_so() {
    use crate::units::WallTime;
    use std::time::SystemTime;
    let dir = disk_dir();
    let paced = |start_at: SystemTime| Params {
        size: ByteSize(20 * 2300),
        rate: Some(200.0),
        start_at: Some(WallTime(start_at)),
        ..Params::for_dir(dir.path())
    };
    let called = Instant::now();
    let r = run(&paced(SystemTime::now() + Duration::from_millis(400)), &ProbeContext::local())
        .unwrap();
    // 20 syncs at 200/s take 95 ms once started; the start waited 400 ms.
    assert!(called.elapsed() >= Duration::from_millis(400));
    assert!(r.warnings.iter().all(|w| !w.contains("out of phase")), "{:?}", r.warnings);
    assert_eq!(r.params["start_at"].as_str().unwrap().len(), "2026-12-02T09:00:00.000000000Z".len());

    let r = run(&paced(SystemTime::now() - Duration::from_secs(10)), &ProbeContext::local())
        .unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("out of phase")),
        "{:?}",
        r.warnings
    );
    assert!(entries(dir.path()).is_empty());
}
