//! /metrics in Prometheus text format: the agent's state and the newest
//! result of each probe (latency quantiles in seconds, check statuses).

use std::fmt::Write as _;

use infraqual_probes::{ProbeResult, Status};

use super::jobs::Jobs;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(jobs: &Jobs, node: &str) -> String {
    let mut out = String::new();
    let node = label(node);
    let _ = writeln!(
        out,
        "# HELP infraqual_up The agent is serving.\n# TYPE infraqual_up gauge"
    );
    let _ = writeln!(out, "infraqual_up{{node=\"{node}\"}} 1");
    let _ = writeln!(
        out,
        "# HELP infraqual_jobs Jobs the agent remembers, by state.\n# TYPE infraqual_jobs gauge"
    );
    for (state, count) in jobs.counts() {
        let _ = writeln!(
            out,
            "infraqual_jobs{{node=\"{node}\",state=\"{state}\"}} {count}"
        );
    }
    let latest = jobs.latest();
    latency(&mut out, &node, &latest);
    checks(&mut out, &node, &latest);
    out
}

fn latency(out: &mut String, node: &str, results: &[ProbeResult]) {
    let _ = writeln!(
        out,
        "# HELP infraqual_latency_seconds Latest probe latency quantiles.\n# TYPE infraqual_latency_seconds gauge"
    );
    for r in results {
        for (name, m) in r.metrics.iter().filter(|(_, m)| m.unit == "ns") {
            for (q, v) in [
                ("0.5", m.p50),
                ("0.9", m.p90),
                ("0.99", m.p99),
                ("0.999", m.p999),
                ("1", m.max),
            ] {
                let _ = writeln!(
                    out,
                    "infraqual_latency_seconds{{node=\"{node}\",probe=\"{}\",metric=\"{}\",quantile=\"{q}\"}} {}",
                    label(r.probe.as_str()),
                    label(name),
                    v as f64 / 1e9
                );
            }
        }
    }
}

fn checks(out: &mut String, node: &str, results: &[ProbeResult]) {
    let _ = writeln!(
        out,
        "# HELP infraqual_check_status Latest verdict per check: 0 pass, 1 skip, 2 warn, 3 fail.\n# TYPE infraqual_check_status gauge"
    );
    for r in results {
        for v in &r.verdicts {
            let code = match v.status {
                Status::Pass => 0,
                Status::Skip => 1,
                Status::Warn => 2,
                Status::Fail => 3,
            };
            let _ = writeln!(
                out,
                "infraqual_check_status{{node=\"{node}\",check=\"{}\"}} {code}",
                label(&v.check)
            );
        }
    }
}
