use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::context::CancelToken;
use crate::result::Status;
use crate::rtt::responder::EchoResponder;

fn target(node: &str, path: &str, addr: SocketAddr) -> Target {
    Target {
        node: node.into(),
        path: path.into(),
        address: addr.ip(),
        port: addr.port(),
    }
}

fn quick(targets: Vec<Target>) -> Params {
    Params {
        targets,
        modes: vec![Mode::Tcp],
        streams: vec![1, 2],
        duration: HumanDuration(Duration::from_secs(2)),
        slice: HumanDuration(Duration::from_secs(2)),
        ..Params::default()
    }
}

#[test]
fn streams_to_the_echo_port_are_counted_by_its_sink() {
    let responder =
        EchoResponder::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), CancelToken::new())
            .unwrap();
    let params = quick(vec![target("b", "native", responder.local_addr())]);
    let r = run(&params, &ProbeContext::local()).unwrap();
    for key in ["local->b/native/tcp1", "local->b/native/tcp2"] {
        let gbit = r.facts["tcp_goodput_gbit"][key].as_f64().unwrap();
        assert!(gbit > 0.0, "{key}: {gbit}");
        let cpu = &r.facts["cpu_per_gb"][key];
        assert!(cpu["receiver"]["total_s"].as_f64().is_some(), "{cpu}");
        assert!(r.facts["cpu_s_per_gb"][key].as_f64().unwrap() > 0.0);
        assert!(!r.series[&format!("goodput_gbit/{key}")].is_empty());
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.verdicts[0].check, "throughput.stall");
    assert_eq!(r.verdicts[0].status, Status::Pass);
}

#[test]
fn a_target_that_serves_nothing_fails_with_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = run(&quick(vec![target("b", "native", addr)]), &ProbeContext::local()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("local->b/native/tcp1") && text.contains("connecting"), "{text}");
    assert!(!text.contains('\n'));
}

#[test]
fn out_of_range_parameters_are_refused() {
    let t = target("b", "native", SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
    let ok = quick(vec![t.clone()]);
    assert!(ok.validate().is_ok());
    let cases = [
        Params { streams: vec![0], ..ok.clone() },
        Params { streams: vec![MAX_STREAMS + 1], ..ok.clone() },
        Params { streams: vec![], ..ok.clone() },
        Params { duration: HumanDuration(Duration::from_secs(1)), ..ok.clone() },
        Params { duration: HumanDuration(MAX_DURATION * 2), ..ok.clone() },
        Params { slice: HumanDuration(Duration::from_millis(2500)), ..ok.clone() },
        Params { targets: vec![], ..ok.clone() },
        Params { echo_nonce: Some("xyz".into()), ..ok.clone() },
        Params { modes: vec![], ..ok.clone() },
        Params { udp_rates: vec![], ..ok.clone() },
        Params { udp_rates: vec![0], ..ok.clone() },
        Params { udp_rates: vec![MAX_UDP_PPS + 1], ..ok.clone() },
        Params { udp_rates: vec![100, 10], ..ok.clone() },
        Params { udp_payload: 8, ..ok.clone() },
        Params { udp_step: HumanDuration(Duration::from_millis(10)), ..ok.clone() },
        Params { loss_threshold_pct: 0.0, ..ok.clone() },
        Params { loss_threshold_pct: f64::NAN, ..ok.clone() },
    ];
    for bad in cases {
        assert!(
            matches!(bad.validate(), Err(ProbeError::InvalidParam { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn udp_steps_count_loss_and_the_highest_clean_rate() {
    let responder =
        EchoResponder::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), CancelToken::new())
            .unwrap();
    let params = Params {
        targets: vec![target("b", "native", responder.local_addr())],
        modes: vec![Mode::Udp],
        udp_rates: vec![1_000, 5_000],
        udp_step: HumanDuration(Duration::from_secs(1)),
        ..Params::default()
    };
    let r = run(&params, &ProbeContext::local()).unwrap();
    let steps = r.facts["udp"]["local->b/native/udp"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        let sent = s["sent"].as_u64().unwrap();
        let received = s["received"].as_u64().unwrap();
        assert!(sent > 0 && received <= sent, "{s}");
        assert!(s["received_pps"].as_f64().unwrap() > 0.0, "{s}");
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.facts["udp_max_rate_pps"].is_object());
}

#[test]
fn a_plain_udp_port_is_no_data_port() {
    // Something listens on TCP but is no sink: the session is never opened.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let params = Params {
        targets: vec![target("b", "native", addr)],
        modes: vec![Mode::Udp],
        udp_rates: vec![1_000],
        udp_step: HumanDuration(Duration::from_secs(1)),
        connect_timeout: HumanDuration(Duration::from_millis(300)),
        ..Params::default()
    };
    let err = run(&params, &ProbeContext::local()).unwrap_err().to_string();
    assert!(err.contains("does not serve the throughput data port"), "{err}");
    drop(listener);
}
