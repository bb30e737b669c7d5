//! A fleet soak's rtt slices need two registrations on the agents: the
//! source may send to its peers (targets), and the peers' echo responders
//! answer the run's nonce. Both lapse on their own, two soak intervals
//! after the coordinator last renewed them, and the coordinator renews them
//! once per interval. Here a soak of seven 4-second intervals outlives the
//! registrations' 8-second life several times over: the rtt slices measure
//! in every interval because they are renewed, the nonce is still answered
//! well past its first expiry, and once the coordinator has gone the nonce
//! is no longer answered and the peers are no longer allowed targets.

mod agents;
mod common;
mod contract;
mod fleet_soaks;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agents::{http, node, run_json, Agent};
use common::only_bundle;
use fleet_soaks::{loopback_plan, plan_agent, rtt_points};
use infraqual::soak::hlog;

/// Two intervals of 4 s.
const REGISTRATION_LIFE: Duration = Duration::from_secs(8);

fn echo_addr(a: &Agent) -> SocketAddr {
    let (_, health) = http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
    let port = serde_json::from_str::<serde_json::Value>(&health).unwrap()["echo_port"]
        .as_u64()
        .unwrap() as u16;
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The nonce the coordinator gave alpha's soak, from alpha's audit line.
fn soak_nonce(a: &Agent) -> Option<Vec<u8>> {
    let log = a.log_text();
    let line = log.lines().find(|l| l.contains("action=start-soak"))?;
    let rest = &line[line.find("echo_nonce: Some(")? + "echo_nonce: Some(".len()..];
    let hex: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_hexdigit())
        .take(32)
        .collect();
    Some(
        (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect(),
    )
}

fn answered(to: SocketAddr, nonce: &[u8]) -> bool {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let datagram = [b"still there?".as_slice(), nonce].concat();
    // Three tries: one lost datagram on a busy loopback is no answer.
    (0..3).any(|_| {
        udp.send_to(&datagram, to).unwrap();
        let mut buf = [0u8; 256];
        udp.recv_from(&mut buf).is_ok()
    })
}

fn registrations_with_nonce(a: &Agent) -> usize {
    a.log_text()
        .lines()
        .filter(|l| l.contains("action=register-targets") && l.contains("echo_nonce=true"))
        .count()
}

fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn renewed_registrations_keep_the_rtt_slices_answered_and_lapse_after_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Agent::start(d, "alpha", &["--echo-port", "0"]);
    let b = Agent::start(d, "beta", &["--echo-port", "0"]);
    let plan = loopback_plan(
        d,
        &[plan_agent("alpha", &a), plan_agent("beta", &b)],
        "[soak]\nfor = \"28s\"\nevery = \"4s\"\npaths = [\"native\"]\n",
        "lease = \"3s\"",
    );
    let beta_echo = echo_addr(&b);
    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_infraqual"))
        .args(["run", plan.to_str().unwrap()])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut nonce = None;
    until("alpha's soak starts", Duration::from_secs(30), || {
        nonce = soak_nonce(&a);
        nonce.is_some()
    });
    let nonce = nonce.unwrap();
    let registered = Instant::now();
    assert!(answered(beta_echo, &nonce), "the run's nonce is answered");
    // Past two registration lives since the soak registered it, the nonce
    // is answered only because it was renewed.
    std::thread::sleep(REGISTRATION_LIFE * 2 + Duration::from_secs(1));
    assert!(
        answered(beta_echo, &nonce),
        "the renewed nonce is still answered {:?} after it was first registered",
        registered.elapsed()
    );
    let status = coordinator.wait().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");

    let bundle = only_bundle(&d.join("runs"));
    contract::assert_bundles_under(d);
    let run = run_json(d);
    for (name, other) in [("alpha", "beta"), ("beta", "alpha")] {
        let log = hlog::read(&bundle.join(format!("{name}.hlog"))).unwrap();
        assert!(
            log.intervals.len() >= 5,
            "{name}: {} intervals",
            log.intervals.len()
        );
        assert!(
            log.end() > REGISTRATION_LIFE.as_secs_f64() * 2.0,
            "{name}: the soak outlived the first registrations"
        );
        let points = rtt_points(node(&run, name), name, other);
        assert_eq!(points.len(), log.intervals.len(), "{name}: {points:?}");
        assert!(
            points.iter().all(|p| p[1].as_f64().unwrap() > 0.0),
            "{name}: every interval's slice got answers, after each renewal too: {points:?}"
        );
    }
    let renewals = registrations_with_nonce(&b);
    assert!(
        renewals >= 5,
        "beta's echo nonce was registered once per interval, not once: {renewals}"
    );

    // The coordinator has gone: nobody renews, and both registrations lapse.
    until(
        "the dead run's nonce stops being answered",
        REGISTRATION_LIFE + Duration::from_secs(20),
        || !answered(beta_echo, &nonce),
    );
    let refused = |a: &Agent| {
        let body = format!(
            r#"{{"for_ms":8000,"every_ms":4000,"peers":[{{"node":"x","path":"native","address":"127.0.0.1","port":{}}}]}}"#,
            beta_echo.port()
        );
        let (code, answer) = http(
            &a.addr,
            "POST",
            "/v1/soaks",
            Some(&a.token),
            body.as_bytes(),
        );
        code == 403 && answer.contains("not allowed")
    };
    until(
        "alpha no longer allows its soak peers as targets",
        REGISTRATION_LIFE + Duration::from_secs(20),
        || refused(&a),
    );
}
