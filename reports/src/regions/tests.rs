//! The region rule on synthetic runs, the report's region table, and the
//! report and `compare` printing the same serial round-trip figure.

use infraqual_probes::rtt::key::RttMetricKey;
use infraqual_probes::rtt::Kind;
use infraqual_probes::{LatencyHistogram, ProbeResult};

use super::*;
use crate::compare::{compare, CompareOptions};
use crate::export::html::HtmlExporter;
use crate::export::Exporter;
use crate::markup::escape;
use crate::test_runs::{hist, node, run};

const OSLO: [(&str, &str); 1] = [(REGION_LABEL, "oslo")];
const FRANKFURT: [(&str, &str); 1] = [(REGION_LABEL, "frankfurt")];

/// An rtt result from `src`, one metric each.
fn rtt(src: &str, metrics: &[Metric]) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, src);
    for (dst, path, kind, h) in metrics {
        let key = RttMetricKey {
            source: src.into(),
            target: dst.to_string(),
            path: path.to_string(),
            kind: *kind,
        };
        r.metric(&key.to_string(), h, "ns").unwrap();
    }
    r
}

/// (target, path, kind, histogram)
type Metric = (&'static str, &'static str, Kind, LatencyHistogram);

/// Every path and kind to `dst`, the native TCP request/response round
/// trip around `native_rr` ns and the others well apart from it, so a
/// figure taken from another path or kind would not pass for it.
fn all_paths(dst: &'static str, native_rr: f64, salt: u64) -> Vec<Metric> {
    vec![
        (dst, "native", Kind::TcpRr, hist(native_rr, 2000, salt)),
        (
            dst,
            "native",
            Kind::Udp,
            hist(native_rr * 0.6, 2000, salt + 1),
        ),
        (
            dst,
            "overlay",
            Kind::TcpRr,
            hist(native_rr * 1.5, 2000, salt + 2),
        ),
        (
            dst,
            "overlay",
            Kind::Udp,
            hist(native_rr * 1.3, 2000, salt + 3),
        ),
    ]
}

fn row(from: &str, to: &str, path: &str, kind: Kind, p50_ns: u64) -> RegionRtt {
    RegionRtt {
        from: from.into(),
        to: to.into(),
        path: path.into(),
        kind,
        count: 100,
        p50_ns,
        p99_ns: p50_ns * 2,
    }
}

fn report_html(run: &RunRecord) -> String {
    let files = HtmlExporter { charts: &[] }.export(run).unwrap();
    String::from_utf8(files[0].bytes.clone()).unwrap()
}

#[test]
fn node_pairs_merge_their_histograms_rather_than_average_their_medians() {
    // One Frankfurt node sent 100 round trips at ~20 ms, the other 10000 at
    // ~30 ms: the median round trip is ~30 ms; a mean of medians says 25.
    let r = run(
        "r",
        vec![
            node("oslo-1", &OSLO, vec![]),
            node(
                "frankfurt-1",
                &FRANKFURT,
                vec![rtt(
                    "frankfurt-1",
                    &[("oslo-1", "native", Kind::TcpRr, hist(20e6, 100, 1))],
                )],
            ),
            node(
                "frankfurt-2",
                &FRANKFURT,
                vec![rtt(
                    "frankfurt-2",
                    &[("oslo-1", "native", Kind::TcpRr, hist(30e6, 10_000, 2))],
                )],
            ),
        ],
    );
    let rows = region_rtts(&r);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].from.as_str(), rows[0].to.as_str()),
        ("frankfurt", "oslo")
    );
    assert_eq!(rows[0].count, 10_100);
    let p50_ms = rows[0].p50_ns as f64 / 1e6;
    assert!((p50_ms - 30.0).abs() < 1.5, "{p50_ms} ms");
}

#[test]
fn the_basis_is_tcp_request_response_then_udp_native_path_first() {
    use Kind::{TcpConnect, TcpRr, Udp};
    type PathKind = (&'static str, Kind);
    // The rows measured, the basis, why.
    let cases: [(&[PathKind], Option<PathKind>, &str); 5] = [
        (
            &[("native", Udp), ("overlay", TcpRr)],
            Some(("overlay", TcpRr)),
            "kind first",
        ),
        (
            &[("overlay", TcpRr), ("native", Udp), ("native", TcpRr)],
            Some(("native", TcpRr)),
            "then native",
        ),
        (
            &[("overlay", Udp), ("native", Udp)],
            Some(("native", Udp)),
            "udp without tcp_rr",
        ),
        (
            &[("wan", Udp), ("overlay", Udp)],
            Some(("overlay", Udp)),
            "other paths by name",
        ),
        (&[("native", TcpConnect)], None, "a connect is not a call"),
    ];
    for (measured, want, why) in cases {
        let rows: Vec<RegionRtt> = measured
            .iter()
            .map(|&(path, kind)| row("a", "b", path, kind, 1))
            .collect();
        let got = SerialBasis::of(&rows);
        let want = want.map(|(path, kind)| SerialBasis {
            path: path.into(),
            kind,
        });
        assert_eq!(got, want, "{why}");
    }
}

#[test]
fn serial_costs_are_measured_from_the_closest_source_region() {
    let rows = [
        row("oslo", "oslo", "native", Kind::TcpRr, 1_000_000),
        row("frankfurt", "oslo", "native", Kind::TcpRr, 25_000_000),
        row("oslo", "frankfurt", "native", Kind::TcpRr, 25_000_000),
        // Another kind never mixes into the basis.
        row("frankfurt", "oslo", "native", Kind::Udp, 1),
    ];
    let costs = serial_costs(&rows);
    assert_eq!(costs.len(), 1, "{costs:?}");
    let c = &costs[0];
    assert_eq!(
        (c.to.as_str(), c.from.as_str(), c.closest.as_str()),
        ("oslo", "frankfurt", "oslo")
    );
    assert_eq!(c.extra_ns(), 240e6);
    assert_eq!(
        c.sentence(),
        "10 serial round trips to oslo from frankfurt cost 240 ms more than from oslo \
         (from merged histograms, native path, TCP request/response p50: 25.0 ms vs 1.00 ms)"
    );
}

/// oslo-1 and oslo-2 are 1 ms apart, frankfurt-1 `far` ns from both.
fn two_regions(id: &str, far: f64) -> RunRecord {
    let metrics = |list: &[(&'static str, f64, u64)]| -> Vec<Metric> {
        list.iter()
            .flat_map(|&(dst, ns, salt)| all_paths(dst, ns, salt))
            .collect()
    };
    run(
        id,
        vec![
            node(
                "oslo-1",
                &OSLO,
                vec![rtt(
                    "oslo-1",
                    &metrics(&[("oslo-2", 1e6, 10), ("frankfurt-1", far, 20)]),
                )],
            ),
            node(
                "oslo-2",
                &OSLO,
                vec![rtt("oslo-2", &metrics(&[("oslo-1", 1e6, 30)]))],
            ),
            node(
                "frankfurt-1",
                &FRANKFURT,
                vec![rtt("frankfurt-1", &metrics(&[("oslo-2", far, 40)]))],
            ),
        ],
    )
}

#[test]
fn the_report_tables_region_pairs_on_the_basis_it_names() {
    let html = report_html(&two_regions("r", 25e6));
    assert!(
        html.contains(
            "<h3 id=\"regions\">Round trip per region pair (merged histograms, native path, TCP request/response)</h3>"
        ),
        "{html}"
    );
    let table = html
        .split("Round trip per region pair")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap();
    // frankfurt->oslo, oslo->frankfurt, oslo->oslo; 2000 round trips each
    // but oslo->oslo, which two nodes measured.
    assert_eq!(table.matches("<tr><td>").count(), 3, "{table}");
    assert!(
        table.contains("<tr><td>oslo</td><td>oslo</td><td class=\"num\">4000</td>"),
        "{table}"
    );
    assert!(html.contains("<p class=\"impact\">10 serial round trips to oslo from frankfurt cost "));
}

#[test]
fn the_report_and_compare_print_the_same_serial_round_trip_figure() {
    let a = two_regions("a", 25e6);
    let b = two_regions("b", 35e6);
    let html = report_html(&a);
    let mut opts = CompareOptions::new("A", "B");
    opts.bootstrap.resamples = 50;
    let c = compare(&a, &b, &opts);
    let impact = &c.regions.as_ref().unwrap().impact;
    let costs = serial_costs(&region_rtts(&a));
    assert_eq!(costs.len(), 1, "{costs:?}");
    let sentence = costs[0].sentence();
    assert!(
        html.contains(&escape(&sentence)),
        "report: {sentence}\n{html}"
    );
    assert!(
        impact.contains(&format!("A: {sentence}")),
        "compare: {sentence}\n{impact:?}"
    );
    // 10 * (25 ms - 1 ms), within the spread of the synthetic data.
    let extra_ms = costs[0].extra_ns() / 1e6;
    assert!((extra_ms - 240.0).abs() < 15.0, "{sentence}");
}

#[test]
fn no_region_table_without_two_labelled_regions() {
    let mut unlabelled = two_regions("u", 25e6);
    for n in &mut unlabelled.nodes {
        n.labels.clear();
    }
    let mut one_region = two_regions("o", 25e6);
    for n in &mut one_region.nodes {
        n.labels.insert(REGION_LABEL.into(), "oslo".into());
    }
    for r in [&unlabelled, &one_region] {
        let html = report_html(r);
        assert!(
            html.contains("<h2 id=\"probe-rtt\">"),
            "the rtt section is there"
        );
        assert!(!html.contains("Round trip per region pair"), "{}", r.run_id);
        assert!(!html.contains("serial round trips"), "{}", r.run_id);
    }
    assert!(region_rtts(&unlabelled).is_empty());
}
