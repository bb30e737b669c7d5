//! The agent against an attacker who holds a token or sits on the same
//! machine: real agent processes, real sockets, real files.

mod agents;
mod common;

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::{http, random_token, read_response, write_private, Agent};
use common::assert_one_line_error;

/// Sends `head` (CRLF lines, without the blank line) and `body` as they are;
/// returns (status, body).
fn raw(addr: &str, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    read_response(&mut s)
}

/// POST `body` (JSON) to `path` with the agent's job token.
fn post(a: &Agent, path: &str, body: &str) -> (u16, String) {
    http(&a.addr, "POST", path, Some(&a.token), body.as_bytes())
}

const JOB: &str = r#"{"probe":"inventory"}"#;

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

#[test]
fn an_agent_without_a_token_file_does_not_start_even_on_loopback() {
    let r = common::run(&["agent", "--listen", "127.0.0.1:0"]);
    assert_one_line_error(&r, "--token-file is required");
}

/// `infraqual agent --listen LISTEN` with a fresh token file of `mode`.
fn agent_start_with_token_mode(listen: &str, mode: u32) -> common::Run {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("t");
    write_private(&token, &random_token());
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
    let t = token.to_str().unwrap();
    common::run(&["agent", "--listen", listen, "--token-file", t])
}

#[test]
fn plaintext_beyond_loopback_is_refused_without_the_flag() {
    let r = agent_start_with_token_mode("0.0.0.0:0", 0o600);
    assert_one_line_error(&r, "refusing plain HTTP beyond loopback");
}

#[test]
fn a_world_readable_token_file_is_refused_with_a_one_line_reason() {
    let r = agent_start_with_token_mode("127.0.0.1:0", 0o644);
    assert_one_line_error(&r, "readable by group or others (mode 0644)");
}

#[test]
fn tokenless_cross_origin_and_read_only_requests_cannot_start_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let read_token = random_token();
    let read_file = tmp.path().join("read.token");
    write_private(&read_file, &read_token);
    let a = Agent::start(
        tmp.path(),
        "gate",
        &[
            "--read-token-file",
            read_file.to_str().unwrap(),
            "--allow-host",
            "node-a.lab",
        ],
    );
    let host = format!("Host: {}", a.addr);
    let auth = format!("Authorization: Bearer {}", a.token);
    let post = |headers: &[&str]| {
        let head = ["POST /v1/jobs HTTP/1.1"]
            .iter()
            .chain(headers)
            .copied()
            .collect::<Vec<_>>()
            .join("\r\n");
        raw(&a.addr, &head, JOB)
    };
    // The review's request: no token, cross-origin, text/plain, rebound Host.
    let (code, body) = post(&[
        "Host: evil.example",
        "Origin: http://evil.example",
        "Content-Type: text/plain",
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--allow-host"), "{body}");
    let (code, body) = post(&[&host, "Content-Type: application/json"]);
    assert_eq!(code, 401, "tokenless on loopback: {body}");
    let (code, body) = post(&[
        &host,
        &auth,
        "Origin: http://evil.example",
        "Content-Type: application/json",
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("browser-style"), "{body}");
    let (code, body) = post(&[
        &host,
        &auth,
        "Sec-Fetch-Mode: no-cors",
        "Content-Type: application/json",
    ]);
    assert_eq!(code, 403, "{body}");
    let (code, body) = post(&[&host, &auth, "Content-Type: text/plain"]);
    assert_eq!(code, 415, "{body}");
    let read_auth = format!("Authorization: Bearer {read_token}");
    let (code, body) = post(&[&host, &read_auth, "Content-Type: application/json"]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    for path in ["/v1/health", "/metrics"] {
        let (code, body) = raw(
            &a.addr,
            &format!("GET {path} HTTP/1.1\r\n{host}\r\n{read_auth}"),
            "",
        );
        assert_eq!(code, 200, "{path}: {body}");
    }
    // The job token, a named Host the operator allowed, JSON: accepted.
    let (code, body) = post(&[
        "Host: node-a.lab:7070",
        &auth,
        "Content-Type: application/json",
    ]);
    assert_eq!(code, 201, "{body}");
}

#[test]
fn a_body_that_never_arrives_is_abandoned() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "slowbody", &[]);
    let mut s = TcpStream::connect(&a.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        a.addr, a.token
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn a_job_flood_gets_429_with_retry_after_and_leaves_the_agent_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "flood", &["--allow-target", "127.0.0.0/8"]);
    let job = serde_json::json!({
        "probe": "rtt",
        "params": {"targets": [{"node": "x", "path": "p", "address": "127.0.0.1", "port": 9}],
                   "count": 1, "warmup": 0, "kinds": ["udp"], "timeout": "10ms"},
    })
    .to_string();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json",
        a.addr, a.token
    );
    let started = Instant::now();
    let counts: Vec<(u16, bool)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..275)
                        .map(|_| {
                            let mut s = TcpStream::connect(&a.addr).unwrap();
                            let req = format!(
                                "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{job}",
                                job.len()
                            );
                            s.write_all(req.as_bytes()).unwrap();
                            let mut out = String::new();
                            let _ = s.read_to_string(&mut out);
                            let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
                            (
                                code,
                                out.to_ascii_lowercase().contains("retry-after: 1\r\n"),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let flood = started.elapsed();
    let accepted = counts.iter().filter(|(c, _)| *c == 201).count();
    let limited = counts.iter().filter(|(c, _)| *c == 429).count();
    assert_eq!(accepted + limited, 1100, "only 201 and 429: {counts:?}");
    assert!(counts
        .iter()
        .filter(|(c, _)| *c == 429)
        .all(|(_, retry)| *retry));
    let ended = Instant::now();
    let (code, body) = loop {
        let (code, body) = post(&a, "/v1/jobs", &job);
        if code != 429 || ended.elapsed() > Duration::from_secs(30) {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "flood of 1100 in {} ms: {accepted} accepted, {limited} 429; a coordinator's job accepted {} ms after",
        flood.as_millis(),
        ended.elapsed().as_millis()
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn rtt_targets_outside_the_allowed_set_get_403_until_registered() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "targets", &["--allow-target", "127.0.0.2/32"]);
    let job = |address: &str| {
        serde_json::json!({
            "probe": "rtt",
            "params": {"targets": [{"node": "x", "path": "p", "address": address, "port": 9}],
                       "count": 1, "warmup": 0, "kinds": ["udp"], "timeout": "10ms"},
        })
        .to_string()
    };
    let (code, body) = post(&a, "/v1/jobs", &job("127.0.0.2"));
    assert_eq!(code, 201, "inside --allow-target: {body}");
    let (code, body) = post(&a, "/v1/jobs", &job("127.0.0.3"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("target 127.0.0.3 is not allowed"), "{body}");
    let mtu = serde_json::json!({
        "probe": "mtu",
        "params": {"targets": [{"node": "x", "path": "p", "address": "127.0.0.3", "port": 9}]},
    })
    .to_string();
    let (code, body) = post(&a, "/v1/jobs", &mtu);
    assert_eq!(code, 403, "mtu too: {body}");
    let registration = r#"{"addresses": ["127.0.0.3"], "ttl_ms": 60000}"#;
    let (code, body) = post(&a, "/v1/targets", registration);
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&a, "/v1/jobs", &job("127.0.0.3"));
    assert_eq!(code, 201, "registered by a coordinator: {body}");
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

#[test]
fn every_request_gets_an_access_line_and_every_job_an_audit_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Agent::start(tmp.path(), "logs", &["--allow-target", "127.0.0.0/8"]);
    for _ in 0..3 {
        let (code, _) = http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
        assert_eq!(code, 200);
    }
    let (code, _) = http(&a.addr, "GET", "/v1/health", None, b"");
    assert_eq!(code, 401);
    let job = r#"{"probe":"rtt","params":{"targets":[{"node":"x","path":"p","address":"127.0.0.1","port":9}],"count":1,"warmup":0,"kinds":["udp"],"timeout":"10ms"}}"#;
    let (code, body) = post(&a, "/v1/jobs", job);
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_job(&a, &id);
    let refused = r#"{"probe":"rtt","params":{"targets":[{"node":"x","path":"p","address":"10.9.9.9","port":9}]}}"#;
    let (code, _) = post(&a, "/v1/jobs", refused);
    assert_eq!(code, 403);
    a.kill();
    let stderr = a.log_text();
    let access: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("access peer="))
        .collect();
    assert!(access.len() >= 6, "{stderr}");
    assert!(access.iter().any(|l| l.contains("status=401")), "{stderr}");
    let audit: Vec<&str> = stderr.lines().filter(|l| l.contains("audit ")).collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("action=start-job probe=rtt")
                && l.contains("127.0.0.1")
                && l.contains(&format!("outcome=started id={id}"))),
        "{stderr}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains(&format!("action=finish-job id={id}"))),
        "{stderr}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("outcome=refused") && l.contains("10.9.9.9")),
        "{stderr}"
    );
}

#[test]
fn the_echo_responder_answers_only_registered_nonces() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "echo", &["--echo-listen", "127.0.0.1:0"]);
    let (_, health) = http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
    let port = serde_json::from_str::<serde_json::Value>(&health).unwrap()["echo_port"]
        .as_u64()
        .unwrap() as u16;
    let echo = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let nonce_hex = random_token();
    let nonce: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&nonce_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let udp_answered = |datagram: &[u8]| {
        udp.send_to(datagram, echo).unwrap();
        let mut buf = [0u8; 256];
        udp.recv_from(&mut buf).is_ok()
    };
    let tcp_answered = |preface: &[u8]| {
        let mut s = TcpStream::connect(echo).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(preface);
        let _ = s.write_all(b"ping");
        let mut back = [0u8; 4];
        s.read_exact(&mut back).is_ok() && &back == b"ping"
    };
    let signed = [b"hello, reflector".as_slice(), &nonce].concat();
    assert!(
        !udp_answered(b"hello, reflector"),
        "an unregistered UDP source gets nothing"
    );
    assert!(
        !udp_answered(&signed),
        "nor one with a nonce nobody registered"
    );
    assert!(
        !tcp_answered(&nonce),
        "TCP without a registered nonce is closed"
    );

    let registration =
        format!(r#"{{"addresses": [], "ttl_ms": 60000, "echo_nonce": "{nonce_hex}"}}"#);
    let (code, body) = post(&a, "/v1/targets", &registration);
    assert_eq!(code, 200, "{body}");
    assert!(udp_answered(&signed), "a registered nonce is echoed");
    assert!(
        !udp_answered(b"hello, reflector"),
        "still nothing without it"
    );
    assert!(
        tcp_answered(&nonce),
        "TCP after the registered nonce is echoed"
    );
}
