//! The agent against an attacker who holds a token or sits on the same
//! machine: real agent processes, real sockets, real files.

mod agents;
mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::{http, Agent};

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

fn wait_job(a: &Agent, id: &str) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http(
            &a.addr,
            "GET",
            &format!("/v1/jobs/{id}"),
            Some(&a.token),
            b"",
        );
        assert_eq!(code, 200, "{body}");
        if !body.contains("\"state\":\"running\"") {
            return body;
        }
        assert!(Instant::now() < until, "job {id} never finished");
        std::thread::sleep(Duration::from_millis(5));
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
        let (code, reply) = http(&a.addr, "POST", "/v1/jobs", Some(&a.token), body.as_bytes());
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
        http(&a.addr, "POST", "/v1/jobs", Some(&a.token), body.as_bytes())
    };
    let (c1, b1) = answer("/etc");
    let (c2, b2) = answer("/etcc");
    assert_eq!((c1, c2), (403, 403), "{b1} / {b2}");
    assert_eq!(b1.replace("/etc", "X"), b2.replace("/etcc", "X"));
}
