//! The agent's network attack surface against an attacker who holds a token
//! or sits on the same machine (tokens, Host and browser checks, floods,
//! targets, the echo responder, logs): real agent processes, real sockets.
//! The file-system side is in agent_files.rs.

mod agents;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use agents::{http, random_token, read_response, wait_job, write_private, Agent};
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
