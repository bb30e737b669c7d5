//! The agent's file-system attack surface: a symlink race against
//! --allow-dir, what its answers reveal about paths, and what a crash of the
//! agent or of `probe services` leaves behind. Real agent processes, real
//! files and namespaces.

mod agents;
mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::{http, wait_job, Agent};

/// POST `body` (JSON) to `path` with the agent's job token.
fn post(a: &Agent, path: &str, body: &str) -> (u16, String) {
    http(&a.addr, "POST", path, Some(&a.token), body.as_bytes())
}

/// Swaps two directory entries atomically (renameat2 RENAME_EXCHANGE), so
/// the path is always either the real directory or the symlink.
fn exchange(a: &Path, b: &Path) {
    let (ca, cb) = (
        CString::new(a.as_os_str().as_bytes()).unwrap(),
        CString::new(b.as_os_str().as_bytes()).unwrap(),
    );
    // SAFETY: valid C strings; the result is checked.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// Counts entries created in `dir` while it is watched (inotify), so an
/// escape is seen even though the probe removes its files afterwards.
struct CreateWatch {
    fd: libc::c_int,
}

impl CreateWatch {
    fn new(dir: &Path) -> Self {
        // SAFETY: plain syscalls; results checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid descriptor and C string.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_CREATE) };
        assert!(wd >= 0);
        CreateWatch { fd }
    }

    fn drain(&self) -> usize {
        let mut count = 0;
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: a valid descriptor and a writable buffer of its length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return count;
            }
            let mut off = 0usize;
            while off < n as usize {
                let len_at = off + 12;
                let len = u32::from_ne_bytes(buf[len_at..len_at + 4].try_into().unwrap()) as usize;
                count += 1;
                off += 16 + len;
            }
        }
    }
}

impl Drop for CreateWatch {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn a_symlink_swapped_under_an_allowed_dir_never_lets_fsync_write_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().canonicalize().unwrap();
    let allowed = top.join("allowed");
    let outside = top.join("outside");
    std::fs::create_dir_all(allowed.join("sub")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, allowed.join("swap")).unwrap();
    let a = Agent::start(&top, "race", &["--allow-dir", allowed.to_str().unwrap()]);
    let watch = CreateWatch::new(&outside);

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        let (sub, swap) = (allowed.join("sub"), allowed.join("swap"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exchange(&sub, &swap);
            }
        })
    };
    let body = serde_json::json!({
        "probe": "fsync",
        "params": {"dir": allowed.join("sub"), "size": "16KiB", "block_size": 4096,
                   "allow_volatile": true},
    })
    .to_string();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..200 {
        let (code, reply) = post(&a, "/v1/jobs", &body);
        match code {
            201 => {
                let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
                wait_job(&a, v["id"].as_str().unwrap());
                accepted += 1;
            }
            403 => {
                assert!(
                    reply.contains("outside the agent's allowed directories"),
                    "{reply}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    let escapes = watch.drain();
    eprintln!("200 tries: {accepted} accepted, {refused} refused, {escapes} escapes");
    assert_eq!(
        escapes, 0,
        "fsync wrote outside --allow-dir {escapes} times"
    );
    assert!(accepted > 0, "no job ever ran inside the allowed directory");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn fsync_dir_answers_do_not_tell_whether_an_outside_path_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let a = Agent::start(
        tmp.path(),
        "oracle",
        &["--allow-dir", allowed.to_str().unwrap()],
    );
    let answer = |dir: &str| {
        let body = serde_json::json!({"probe": "fsync", "params": {"dir": dir}}).to_string();
        post(&a, "/v1/jobs", &body)
    };
    let (c1, b1) = answer("/etc");
    let (c2, b2) = answer("/etcc");
    assert_eq!((c1, c2), (403, 403), "{b1} / {b2}");
    assert_eq!(b1.replace("/etc", "X"), b2.replace("/etcc", "X"));
}

fn fsync_work_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".infraqual-fsync-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn after_kill_9_mid_fsync_the_next_agent_start_removes_the_leftovers_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    let sub = allowed.join("etcd");
    std::fs::create_dir_all(&sub).unwrap();
    let allow = ["--allow-dir", allowed.to_str().unwrap()];
    let mut first = Agent::start(tmp.path(), "crash1", &allow);
    let job = serde_json::json!({
        "probe": "fsync",
        "params": {"dir": sub, "size": "64MiB", "duration": "60s", "allow_volatile": true},
    })
    .to_string();
    let (code, body) = post(&first, "/v1/jobs", &job);
    assert_eq!(code, 201, "{body}");
    let until = Instant::now() + Duration::from_secs(30);
    while fsync_work_dirs(&sub).is_empty() {
        assert!(
            Instant::now() < until,
            "the fsync job never made its directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill();
    let left = fsync_work_dirs(&sub);
    assert_eq!(left.len(), 1, "kill -9 leaves the work directory: {left:?}");

    let mut second = Agent::start(tmp.path(), "crash2", &allow);
    assert!(fsync_work_dirs(&sub).is_empty(), "removed on start");
    second.kill();
    let stderr = second.log_text();
    assert!(
        stderr.contains("removed") && stderr.contains(&left[0]),
        "the agent says what it removed: {stderr}"
    );
}

#[test]
fn after_kill_9_mid_services_the_next_run_removes_its_namespaces_and_says_so() {
    infraqual_probes::require_caps!(NetAdmin, SysAdmin);
    let mut crashed = common::infraqual()
        .args([
            "probe",
            "services",
            "--modes",
            "iptables-nft",
            "--counts",
            "10,2000,5000",
        ])
        .args(["--samples", "20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("iq-{:x}s", crashed.id());
    let until = Instant::now() + Duration::from_secs(60);
    while infraqual_probes::system::netns::names_with_prefix(&prefix).len() < 2 {
        assert!(
            Instant::now() < until,
            "the services probe never made its namespaces"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    let left = infraqual_probes::system::netns::names_with_prefix(&prefix);
    assert_eq!(left.len(), 2, "kill -9 leaves node and ep: {left:?}");

    let r = common::run(&[
        "probe",
        "services",
        "--modes",
        "iptables-nft",
        "--counts",
        "10",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        infraqual_probes::system::netns::names_with_prefix(&prefix).is_empty(),
        "the next run removed them"
    );
    for name in &left {
        assert!(
            r.stderr
                .contains(&format!("removed network namespace {name}")),
            "says so: {}",
            r.stderr
        );
    }
}
