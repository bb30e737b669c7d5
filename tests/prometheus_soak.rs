//! A real Prometheus scrapes a real agent during a fleet soak (`infraqual
//! run` with `[soak]`): for every interval of the node's `.hlog`, the
//! change of the agent's cumulative histogram over that interval, as
//! Prometheus's HTTP API answers it, holds the interval's samples exactly
//! (count) and `histogram_quantile(0.99, ...)` over it falls in the bucket
//! of the interval's own p99.

mod agents;
mod common;
mod prometheus;

use std::time::Duration;

use agents::{http, write_plan, Agent, PlanAgent};
use common::{only_bundle, run_in};
use infraqual::soak::hlog;
use prometheus::{bucket_around, query_at, query_value, start_prometheus};

const NODE: &str = "prom-soak";

#[test]
fn each_soak_interval_agrees_with_prometheus_over_that_interval() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = d.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let agent = Agent::start(d, NODE, &["--allow-dir", disk.to_str().unwrap()]);
    let (prom, prom_addr) = start_prometheus(d, &agent.addr, &d.join(format!("{NODE}.token")));
    // Scraped before the soak starts, so its first interval has a baseline.
    query_value(
        &prom_addr,
        &format!("infraqual_up{{node=\"{NODE}\"}}"),
        Duration::from_secs(60),
    );

    let plan = write_plan(
        d,
        &[PlanAgent {
            name: NODE,
            url: agent.url(),
            token: agent.token.clone(),
        }],
        &format!(
            "[soak]\nfor = \"20s\"\nevery = \"5s\"\ndir = \"{}\"\n",
            disk.display()
        ),
        "",
    );
    let r = run_in(&["run", plan.to_str().unwrap()], Some(d));
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let log = hlog::read(&only_bundle(&d.join("runs")).join(format!("{NODE}.hlog"))).unwrap();
    assert!(
        log.intervals.len() >= 3,
        "{} intervals",
        log.intervals.len()
    );
    let (_, exposition) = http(&agent.addr, "GET", "/metrics", Some(&agent.token), b"");
    // Prometheus has scraped past the soak's end.
    std::thread::sleep(Duration::from_secs(3));

    let mut compared = 0;
    for (i, interval) in log.intervals.iter().enumerate() {
        let end = log.start_time + interval.facts.start + interval.facts.length;
        let window_ms = (interval.facts.length * 1000.0).round() as u64;
        for (tag, hist) in &interval.series {
            if hist.is_empty() {
                continue;
            }
            let (probe, metric) = tag.split_once('/').unwrap();
            let family = format!("infraqual_{probe}_latency_seconds");
            let labels = format!("{{node=\"{NODE}\",metric=\"{metric}\"}}");
            // The growth over the interval; a series born in it (the
            // first interval) grew from zero.
            let delta = |series: &str| {
                format!(
                    "({series}{labels} - ({series}{labels} offset {window_ms}ms or {series}{labels} * 0))"
                )
            };
            let count = query_at(&prom_addr, &delta(&format!("{family}_count")), Some(end))
                .unwrap_or_else(|| panic!("interval {i} {tag}: no count from Prometheus"));
            assert_eq!(
                count as u64,
                hist.len(),
                "interval {i} {tag}: Prometheus saw the interval's samples"
            );
            let p99_prom = query_at(
                &prom_addr,
                &format!(
                    "histogram_quantile(0.99, {})",
                    delta(&format!("{family}_bucket"))
                ),
                Some(end),
            )
            .unwrap_or_else(|| panic!("interval {i} {tag}: no histogram_quantile"));
            let p99_hlog = hist.value_at_quantile(0.99) as f64 / 1e9;
            let (lower, upper) = bucket_around(
                &exposition,
                &format!("{family}_bucket{{node=\"{NODE}\",metric=\"{metric}\""),
                p99_hlog,
            );
            eprintln!(
                "interval {i} {tag}: {} samples, hlog p99 {p99_hlog} s, \
                 histogram_quantile {p99_prom} s, bucket ({lower}, {upper}]",
                hist.len()
            );
            assert!(
                p99_prom >= lower * 0.999 && p99_prom <= upper * 1.001,
                "interval {i} {tag}: histogram_quantile {p99_prom} s outside the hlog p99's \
                 bucket ({lower}, {upper}] (p99 {p99_hlog} s)"
            );
            compared += 1;
        }
    }
    drop(prom);
    assert!(
        compared >= 2 * log.intervals.len(),
        "steal and fsync per interval"
    );
}
