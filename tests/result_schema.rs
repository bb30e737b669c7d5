//! The JSON Schemas in docs/schema/ against real output: a result of every
//! probe this build has (run for real on loopback and a scratch directory)
//! and a real run.json validate, and a renamed or mistyped field, a wrong
//! status or an `hdr` that is not base64 V2 is refused.

mod contract;

use std::net::{Ipv4Addr, SocketAddr};

use infraqual_probes::rtt::responder::EchoResponder;
use infraqual_probes::{
    registry, CancelToken, LatencyHistogram, ProbeContext, ProbeName, ProbeResult, Profile, Verdict,
};
use infraqual_reports::bundle::BundleWriter;
use serde_json::{json, Value};

fn sample_result() -> ProbeResult {
    let mut hist = LatencyHistogram::new();
    for v in [90_000, 150_000, 150_000, 260_000, 2_500_000] {
        hist.record(v);
    }
    let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n1");
    r.fact("rotational", false);
    r.metric("fdatasync", &hist, "ns").unwrap();
    r.series
        .insert("per_second_syncs".into(), vec![(1.0, 6150.0)]);
    let p99 = r.metrics["fdatasync"].p99 as f64;
    r.verdicts
        .push(Profile::default().judge("fsync.fdatasync.p99", p99));
    r.verdicts
        .push(Verdict::skip("fsync.other", "", "no thresholds"));
    r
}

fn sample_run_json() -> Value {
    let out = tempfile::tempdir().unwrap();
    let mut w = BundleWriter::create(out.path(), "", json!({}), Profile::default()).unwrap();
    w.add_result(
        "n1",
        ProbeResult::new(infraqual_probes::inventory::NAME, "n1"),
    )
    .unwrap();
    w.add_result("n1", sample_result()).unwrap();
    w.add_error("n2", None, "unreachable").unwrap();
    w.finish().unwrap();
    contract::assert_run_json(&w.dir().join("run.json"))
}

/// Applies `change` to a copy of `valid` and returns the schema errors.
fn broken(valid: &Value, errors: fn(&Value) -> Vec<String>, change: impl Fn(&mut Value)) -> String {
    let mut v = valid.clone();
    change(&mut v);
    errors(&v).join("\n")
}

fn rename(obj: &mut Value, from: &str, to: &str) {
    let map = obj.as_object_mut().unwrap();
    let value = map.remove(from).unwrap();
    map.insert(to.into(), value);
}

#[test]
fn every_probe_the_schema_describes_is_a_probe_of_this_build() {
    // A renamed probe would silently stop matching its fact shapes.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(contract::schema_dir().join("probe-result.schema.json")).unwrap(),
    )
    .unwrap();
    let text = schema.to_string();
    let described: Vec<String> = text
        .match_indices("\"probe\":{\"const\":\"")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    assert!(described.len() >= 3, "{described:?}");
    for name in described {
        assert!(
            name.parse::<ProbeName>().is_ok(),
            "the schema describes `{name}`, which is not a probe of this build"
        );
    }
}

#[test]
fn real_results_of_every_unprivileged_probe_validate() {
    let ctx = ProbeContext::local();
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let responder = EchoResponder::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        CancelToken::new(),
    )
    .unwrap();
    let target = json!([{ "node": "lo", "path": "native", "address": "127.0.0.1",
                          "port": responder.port() }]);
    let runs = [
        (infraqual_probes::inventory::NAME, json!({})),
        (
            infraqual_probes::steal::NAME,
            json!({ "duration": "1s", "cpus": "0" }),
        ),
        (
            infraqual_probes::fsync::NAME,
            json!({ "dir": scratch.path(), "size": "256KiB", "allow_volatile": true }),
        ),
        (
            infraqual_probes::rtt::NAME,
            json!({ "targets": target, "count": 50, "warmup": 2 }),
        ),
        (
            infraqual_probes::mtu::NAME,
            json!({ "targets": target, "max_packet": 1500 }),
        ),
        (
            infraqual_probes::throughput::NAME,
            json!({ "targets": [target[0], { "node": "lo", "path": "overlay",
                    "address": "127.0.0.1", "port": responder.port() }],
                    "streams": [1], "duration": "2s", "udp_rates": [1000], "udp_step": "1s" }),
        ),
    ];
    for (probe, params) in runs {
        let result = registry::run(probe, &params, &ctx)
            .unwrap_or_else(|e| panic!("{probe} could not run: {e}"));
        let value = serde_json::to_value(&result).unwrap();
        assert!(
            !value["facts"].as_object().unwrap().is_empty(),
            "{probe} measured nothing: {value:#}"
        );
        contract::assert_probe_result(&value);
    }
    responder.stop();
}

#[test]
fn probe_result_schema_refuses_renamed_and_mistyped_fields() {
    let valid = serde_json::to_value(sample_result()).unwrap();
    contract::assert_probe_result(&valid);
    let errors = contract::probe_result_errors;
    let cases: Vec<(&str, String)> = vec![
        (
            "duration_ms",
            broken(&valid, errors, |v| rename(v, "duration_ms", "duration")),
        ),
        (
            "schema_version",
            broken(&valid, errors, |v| v["schema_version"] = json!(2)),
        ),
        ("probe", broken(&valid, errors, |v| v["probe"] = json!(42))),
        (
            "started_at",
            broken(&valid, errors, |v| {
                v["started_at"] = json!("2026-11-22 10:00:00+01:00")
            }),
        ),
        (
            "p99",
            broken(&valid, errors, |v| {
                rename(&mut v["metrics"]["fdatasync"], "p99", "p99_ns")
            }),
        ),
        (
            "count",
            broken(&valid, errors, |v| {
                v["metrics"]["fdatasync"]["count"] = json!("5")
            }),
        ),
        (
            "hdr",
            broken(&valid, errors, |v| {
                v["metrics"]["fdatasync"]["hdr"] = json!("1c849314deadbeef")
            }),
        ),
        (
            "status",
            broken(&valid, errors, |v| v["verdicts"][0]["status"] = json!("ok")),
        ),
        (
            "series",
            broken(&valid, errors, |v| {
                v["series"]["per_second_syncs"][0][1] = Value::Null
            }),
        ),
        (
            "rotational",
            broken(&valid, errors, |v| v["facts"]["rotational"] = json!("no")),
        ),
        (
            "metrics",
            broken(&valid, errors, |v| {
                rename(&mut v["metrics"], "fdatasync", "fsync")
            }),
        ),
    ];
    for (what, errors) in cases {
        assert!(!errors.is_empty(), "a broken `{what}` passed the schema");
    }
    let mut extra = valid.clone();
    extra["a_key_from_a_later_version"] = json!({"any": 1});
    extra["metrics"]["fdatasync"]["p75"] = json!(1);
    contract::assert_probe_result(&extra);
}

#[test]
fn run_schema_refuses_renamed_and_mistyped_fields() {
    let valid = sample_run_json();
    let errors = contract::run_json_errors;
    let cases: Vec<(&str, String)> = vec![
        (
            "run_id",
            broken(&valid, errors, |v| rename(v, "run_id", "id")),
        ),
        (
            "verdict",
            broken(&valid, errors, |v| v["verdict"] = json!("passed")),
        ),
        (
            "finished_at",
            broken(&valid, errors, |v| v["finished_at"] = json!(1764547200)),
        ),
        (
            "inventory",
            broken(&valid, errors, |v| {
                v["nodes"][0]["inventory"]["probe"] = json!("fsync")
            }),
        ),
        (
            "results",
            broken(&valid, errors, |v| {
                v["nodes"][0]["results"][0]["verdicts"][0]["check"] = json!("")
            }),
        ),
        (
            "errors",
            broken(&valid, errors, |v| {
                rename(&mut v["nodes"][1]["errors"][0], "message", "msg")
            }),
        ),
        (
            "profile",
            broken(&valid, errors, |v| {
                v["profile"]["checks"]["steal.pct"]["fial"] = json!(10)
            }),
        ),
    ];
    for (what, errors) in cases {
        assert!(!errors.is_empty(), "a broken `{what}` passed the schema");
    }
}
