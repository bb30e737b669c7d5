//! `infraqual probe throughput` on bad input: exit 2 and one line naming
//! what is wrong, before or instead of any traffic.

mod common;

use common::{assert_one_line_error, run};

#[test]
fn out_of_range_rates_durations_and_stream_counts_exit_2_with_one_line() {
    let target = "--target=b=127.0.0.1:9";
    for (args, needle) in [
        (vec!["--streams", "9"], "streams"),
        (vec!["--streams", "0"], "streams"),
        (vec!["--duration", "1s"], "duration"),
        (vec!["--duration", "2h"], "duration"),
        (vec!["--slice", "1500ms"], "slice"),
        (vec!["--udp-rates", "0"], "udp-rates"),
        (vec!["--udp-rates", "100k,10k"], "udp_rates"),
        (vec!["--udp-rates", "99M"], "udp_rates"),
        (vec!["--udp-payload", "8"], "udp_payload"),
        (vec!["--udp-step", "10ms"], "udp_step"),
        (vec!["--loss-threshold-pct", "0"], "loss_threshold_pct"),
    ] {
        let mut all = vec!["probe", "throughput", target];
        all.extend(args.iter().copied());
        assert_one_line_error(&run(&all), needle);
    }
}

#[test]
fn a_target_that_does_not_serve_the_data_port_exits_2_with_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let target = format!("--target=b={addr}");
    let r = run(&[
        "probe",
        "throughput",
        &target,
        "--streams",
        "1",
        "--duration",
        "2s",
        "--udp-rates",
        "1000",
        "--udp-step",
        "1s",
    ]);
    assert_one_line_error(&r, "connecting to");
}
