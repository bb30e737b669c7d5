//! `infraqual probe steal` through the real binary: the JSON contract keys
//! and exit code 2 for bad flags.

mod common;
mod contract;

use common::{assert_one_line_error, run};
use serde_json::Value;

#[test]
fn probe_steal_json_carries_the_contract_keys() {
    let r = run(&[
        "probe",
        "steal",
        "--duration",
        "2s",
        "--cpus",
        "0",
        "--json",
    ]);
    // 0 pass, 1 a failed verdict (a starved CI host): both are measurements.
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("one ProbeResult on stdout");
    contract::assert_probe_result(&v);
    assert_eq!(v["probe"], "steal");
    for key in ["steal_pct", "lost_pct", "guest_wait_pct"] {
        assert!(v["facts"][key].is_number(), "facts.{key}: {}", v["facts"]);
    }
    assert!(v["facts"]["per_cpu"]["cpu0"]["lost_pct"].is_number());
    assert!(v["metrics"]["hiccup"]["hdr"].is_string());
    assert_eq!(v["series"]["pct/lost"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["verdicts"][0]["check"], "steal.pct");
}

#[test]
fn probe_steal_bad_flags_exit_2_with_one_line() {
    let r = run(&["probe", "steal", "--cpus", "4096"]);
    assert_one_line_error(&r, "cpus");
    let r = run(&["probe", "steal", "--duration", "soon"]);
    assert_one_line_error(&r, "duration");
    let r = run(&["probe", "steal", "--duration", "2h"]);
    assert_one_line_error(&r, "duration");
}
