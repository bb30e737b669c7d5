use std::net::{Ipv4Addr, SocketAddr};

use super::responder::EchoResponder;
use super::*;
use crate::context::CancelToken;
use crate::result::Status;

fn responder() -> EchoResponder {
    EchoResponder::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        CancelToken::new(),
    )
    .unwrap()
}

fn target(node: &str, path: &str, port: u16) -> Target {
    Target {
        node: node.into(),
        path: path.into(),
        address: Ipv4Addr::LOCALHOST.into(),
        port,
    }
}

#[test]
fn loopback_round_trips_fill_every_kind_with_the_contract_keys() {
    let r = responder();
    let params = Params {
        targets: vec![
            target("b", "native", r.port()),
            target("b", "overlay", r.port()),
        ],
        count: 200,
        warmup: 5,
        ..Params::default()
    };
    let res = run(&params, &ProbeContext::local()).unwrap();
    for path in ["native", "overlay"] {
        for kind in ["udp", "tcp_rr", "tcp_connect"] {
            let m = &res.metrics[&format!("local->b/{path}/{kind}")];
            assert_eq!(m.count, 200, "{path}/{kind}");
            assert!(
                m.p50 > 0 && m.p50 < 50_000_000,
                "{path}/{kind} p50 {}",
                m.p50
            );
        }
    }
    let loss = &res.facts["loss"]["local->b/native"];
    assert_eq!(loss["sent"], 200);
    assert_eq!(loss["lost"], 0);
    assert_eq!(loss["duplicates"], 0);
    let oh = &res.facts["overlay_overhead_us"]["local->b"];
    assert_eq!(oh["kind"], "udp");
    assert!(oh["p50_us"].is_number() && oh["p99_pct"].is_number());
    let v: Vec<_> = res.verdicts.iter().map(|v| v.check.as_str()).collect();
    assert_eq!(v, ["rtt.udp.p99", "rtt.loss.pct"]);
    assert!(
        res.verdicts.iter().all(|v| v.status == Status::Pass),
        "{:?}",
        res.verdicts
    );
}

#[test]
fn paced_sending_keeps_the_rate_and_back_fills_nothing_when_fast() {
    let r = responder();
    let params = Params {
        targets: vec![target("b", "native", r.port())],
        count: 50,
        warmup: 0,
        rate: Some(500.0),
        kinds: vec![Kind::Udp],
        ..Params::default()
    };
    let started = Instant::now();
    let res = run(&params, &ProbeContext::local()).unwrap();
    let took = started.elapsed();
    // 50 probes at 500/s take about 100 ms: at least 98 ms by schedule.
    assert!(took >= Duration::from_millis(98), "{took:?}");
    assert_eq!(res.metrics["local->b/native/udp"].count, 50);
}

#[test]
fn a_dead_port_is_all_loss_with_a_warning_not_an_error() {
    // A bound but never-read socket: datagrams vanish, TCP is refused.
    let sink = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = sink.local_addr().unwrap().port();
    let params = Params {
        targets: vec![target("b", "native", port)],
        count: 3,
        warmup: 0,
        timeout: HumanDuration(Duration::from_millis(50)),
        ..Params::default()
    };
    let res = run(&params, &ProbeContext::local()).unwrap();
    assert_eq!(res.facts["loss"]["local->b/native"]["lost"], 3);
    assert!(res.metrics.is_empty());
    assert!(
        res.warnings.iter().any(|w| w.contains("no reply at all")),
        "{:?}",
        res.warnings
    );
    let loss = res
        .verdicts
        .iter()
        .find(|v| v.check == "rtt.loss.pct")
        .unwrap();
    assert_eq!(loss.status, Status::Fail);
}

fn cancelled_run(kind: Kind, rate: f64) -> (Result<ProbeResult, ProbeError>, Duration) {
    let r = responder();
    let mut ctx = ProbeContext::local();
    ctx.cancel = ctx
        .cancel
        .with_deadline(Instant::now() + Duration::from_millis(300));
    let params = Params {
        targets: vec![target("b", "native", r.port())],
        count: 1_000_000,
        rate: Some(rate),
        kinds: vec![kind],
        ..Params::default()
    };
    let started = Instant::now();
    let res = run(&params, &ctx);
    (res, started.elapsed())
}

#[test]
fn cancel_mid_measurement_fails_as_cancelled() {
    for kind in Kind::ALL {
        let (res, _) = cancelled_run(kind, 100.0);
        assert!(
            matches!(res, Err(ProbeError::Cancelled { .. })),
            "{kind:?}: {res:?}"
        );
    }
}

#[test]
fn cancel_is_seen_while_pacing_at_the_slowest_rate() {
    // One exchange per 10 s: the old pace() slept the whole interval.
    for kind in Kind::ALL {
        let (res, took) = cancelled_run(kind, MIN_RATE);
        assert!(matches!(res, Err(ProbeError::Cancelled { .. })), "{res:?}");
        assert!(took < Duration::from_secs(10), "{kind:?} took {took:?}");
    }
}

#[test]
fn bad_params_are_refused_with_the_name() {
    let ok = Params {
        targets: vec![target("b", "native", 7071)],
        ..Params::default()
    };
    assert!(ok.validate().is_ok());
    let cases: Vec<(Params, &str)> = vec![
        (Params::default(), "targets"),
        (
            Params {
                count: 0,
                ..ok.clone()
            },
            "count",
        ),
        (
            Params {
                payload: 8,
                ..ok.clone()
            },
            "payload",
        ),
        (
            Params {
                rate: Some(-1.0),
                ..ok.clone()
            },
            "rate",
        ),
        (
            Params {
                rate: Some(0.001),
                ..ok.clone()
            },
            "rate",
        ),
        (
            Params {
                rate: Some(0.5),
                time_limit: HumanDuration(Duration::from_secs(1)),
                ..ok.clone()
            },
            "rate",
        ),
        (
            Params {
                kinds: vec![],
                ..ok.clone()
            },
            "kinds",
        ),
        (
            Params {
                targets: vec![target("a/b", "native", 1)],
                ..ok.clone()
            },
            "targets.node",
        ),
    ];
    for (p, name) in cases {
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    let e: Result<Params, _> = serde_json::from_value(serde_json::json!({"bogus": 1}));
    assert!(e.is_err());
    let p: Params = serde_json::from_value(serde_json::json!({
        "targets": [{"node": "b", "path": "native", "address": "198.18.0.2", "port": 7071}],
        "count": 10, "payload": 64, "rate": null, "kinds": ["udp", "tcp_rr", "tcp_connect"]
    }))
    .unwrap();
    assert_eq!(p.kinds, Kind::ALL.to_vec());
}
