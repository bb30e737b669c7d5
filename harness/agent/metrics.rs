//! /metrics in Prometheus text format (0.0.4): the agent's state, latency as
//! cumulative histograms per probe (buckets chosen for each probe's range,
//! see buckets.rs), counters for jobs and rtt loss, and the newest verdict of
//! each check. Checked by `promtool check metrics` in the tests.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use infraqual_probes::{ProbeName, ProbeResult, Status};

use super::buckets::seconds_text;
use super::jobs::Jobs;
use super::totals::Totals;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The family name of a probe's latency histogram.
pub fn latency_family(probe: ProbeName) -> String {
    format!("infraqual_{}_latency_seconds", probe.as_str())
}

pub fn render(jobs: &Jobs, node: &str) -> String {
    let mut out = String::new();
    let node = label(node);
    family(&mut out, "infraqual_up", "gauge", "The agent is serving.");
    let _ = writeln!(out, "infraqual_up{{node=\"{node}\"}} 1");
    family(
        &mut out,
        "infraqual_jobs",
        "gauge",
        "Jobs the agent remembers, by state.",
    );
    for (state, count) in jobs.counts() {
        let _ = writeln!(
            out,
            "infraqual_jobs{{node=\"{node}\",state=\"{state}\"}} {count}"
        );
    }
    let totals = jobs.totals();
    latency(&mut out, &node, &totals);
    runs(&mut out, &node, &totals);
    loss(&mut out, &node, &totals);
    checks(&mut out, &node, &jobs.latest());
    out
}

fn latency(out: &mut String, node: &str, totals: &Totals) {
    let probes: BTreeSet<ProbeName> = totals.latency.keys().map(|(p, _)| *p).collect();
    for probe in probes {
        let name = latency_family(probe);
        family(
            out,
            &name,
            "histogram",
            &format!("Latencies the {probe} probe measured since the agent started, by metric."),
        );
        for ((_, metric), t) in totals.latency.iter().filter(|((p, _), _)| *p == probe) {
            let labels = format!("node=\"{node}\",metric=\"{}\"", label(metric));
            for (bound, count) in t.bounds_ns.iter().zip(&t.counts) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{}\"}} {count}",
                    seconds_text(*bound)
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", t.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", t.sum_ns / 1e9);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", t.count);
        }
    }
}

fn runs(out: &mut String, node: &str, totals: &Totals) {
    family(
        out,
        "infraqual_probe_runs_total",
        "counter",
        "Probe jobs finished since the agent started, by outcome (done, failed, cancelled).",
    );
    for ((probe, outcome), n) in &totals.runs {
        let _ = writeln!(
            out,
            "infraqual_probe_runs_total{{node=\"{node}\",probe=\"{probe}\",outcome=\"{outcome}\"}} {n}"
        );
    }
}

fn loss(out: &mut String, node: &str, totals: &Totals) {
    let counters = [
        (
            "infraqual_rtt_udp_sent_total",
            "UDP probes the rtt probe sent, by path.",
        ),
        (
            "infraqual_rtt_udp_lost_total",
            "UDP probes that got no reply, by path.",
        ),
        (
            "infraqual_rtt_udp_errors_total",
            "Send or receive errors of the rtt probe, by path.",
        ),
    ];
    for (i, (name, help)) in counters.into_iter().enumerate() {
        family(out, name, "counter", help);
        for (path, t) in &totals.rtt_loss {
            let value = [t.sent, t.lost, t.errors][i];
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",path=\"{}\"}} {value}",
                label(path)
            );
        }
    }
}

fn checks(out: &mut String, node: &str, results: &[ProbeResult]) {
    family(
        out,
        "infraqual_check_status",
        "gauge",
        "Latest verdict per check: 0 pass, 1 skip, 2 warn, 3 fail.",
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
