//! The questions a reader brings to report.html, each answered in one
//! sentence with its number and reason, a link to the section with the
//! details and the id of the one chart that proves it. One function per
//! question; a question the run did not measure gives no answer and is
//! named in the "not measured" line instead.

use std::collections::BTreeMap;

use infraqual_probes::{ProbeName, ProbeResult, Status, Verdict};
use serde_json::Value;

use crate::bundle::{NodeRecord, RunRecord};
use crate::format;
use crate::regions::{region_rtts, serial_costs};

use super::fio_reference;

pub struct Answer {
    pub question: &'static str,
    /// Plain text: the answer, its number and the reason.
    pub text: String,
    /// The verdict behind the answer; None for a figure no check judges
    /// (the overlay's cost, the Services' cost, the regions' distance).
    pub status: Option<Status>,
    /// The section the details are in (an element id of report.html).
    pub section: String,
    /// The chart that proves it, by chart id, when one was drawn.
    pub chart: Option<String>,
}

/// Every question, in the order a reader asks them, with the probe that
/// answers it (for the "not measured" line).
pub const QUESTIONS: [(&str, &str); 7] = [
    ("fsync", "Can this disk carry etcd?"),
    ("steal", "Is a neighbour stealing CPU?"),
    ("rtt", "What does the overlay cost per round trip?"),
    ("services", "What do many Services cost per first packet?"),
    ("mtu", "Where does the MTU break?"),
    ("regions", "How far apart are the regions?"),
    ("throughput", "What does the overlay cost per byte?"),
];

pub fn answers(run: &RunRecord, chart_ids: &[&str]) -> Vec<Answer> {
    let chart = |prefix: &str| {
        chart_ids
            .iter()
            .find(|id| id.starts_with(prefix))
            .map(|id| id.to_string())
    };
    let mut out = Vec::new();
    out.extend(disk(run, chart("fsync-fdatasync")));
    out.extend(steal(run, chart("steal-timeline").or(chart("steal-"))));
    out.extend(overlay(
        run,
        chart("rtt-heatmap-overlay-p50").or(chart("rtt-cdf-")),
    ));
    out.extend(services(
        run,
        chart("services-first-packet-p50").or(chart("services-")),
    ));
    out.extend(mtu(run));
    out.extend(regions(
        run,
        chart("rtt-heatmap-native").or(chart("rtt-heatmap-")),
    ));
    out.extend(super::overlay_tax::answer(run, chart("throughput-")));
    out
}

/// Questions of [`QUESTIONS`] that got no answer.
pub fn unanswered(answers: &[Answer]) -> Vec<&'static str> {
    QUESTIONS
        .iter()
        .filter(|(_, q)| !answers.iter().any(|a| a.question == *q))
        .map(|(_, q)| *q)
        .collect()
}

fn results_of(
    run: &RunRecord,
    probe: ProbeName,
) -> impl Iterator<Item = (&NodeRecord, &ProbeResult)> {
    run.results().filter(move |(_, r)| r.probe == probe)
}

/// The worst verdict of `check` over every node (fail before warn before
/// pass, then the larger observed value), with its node.
fn worst<'a>(run: &'a RunRecord, check: &str) -> Option<(&'a NodeRecord, &'a Verdict, usize)> {
    let mut all: Vec<(&NodeRecord, &Verdict)> = run
        .results()
        .flat_map(|(n, r)| r.verdicts.iter().map(move |v| (n, v)))
        .filter(|(_, v)| v.check == check && v.status != Status::Skip && v.observed.is_some())
        .collect();
    let nodes = all.len();
    all.sort_by(|a, b| {
        a.1.status.cmp(&b.1.status).then(
            a.1.observed
                .partial_cmp(&b.1.observed)
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    all.pop().map(|(n, v)| (n, v, nodes))
}

/// ` on NODE` when the run has more than one node.
fn on_node(run: &RunRecord, node: &NodeRecord) -> String {
    if run.nodes.len() > 1 {
        format!(" on {}", node.name)
    } else {
        String::new()
    }
}

fn limit_text(v: &Verdict) -> String {
    v.threshold
        .map(|t| format::value(t, &v.unit))
        .unwrap_or_else(|| "-".into())
}

fn disk(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    let (node, v, nodes) = worst(run, "fsync.fdatasync.p99")?;
    let observed = format::value(v.observed?, &v.unit);
    let limit = limit_text(v);
    let result = results_of(run, infraqual_probes::fsync::NAME)
        .find(|(n, _)| n.name == node.name)
        .map(|(_, r)| r);
    let recipe = result
        .map(fio_reference::judged_pattern)
        .unwrap_or_else(|| "one fdatasync per write".into());
    let reference = result.and_then(fio_reference::sentence).unwrap_or_default();
    let scope = if nodes > 1 {
        "the slowest disk's"
    } else {
        "the"
    };
    let text = match v.status {
        Status::Pass => format!(
            "Yes: {scope} 99th-percentile fdatasync is {observed}{where_}, under etcd's {limit} limit ({recipe}).{reference}",
            where_ = on_node(run, node)
        ),
        Status::Warn => format!(
            "Barely: {scope} 99th-percentile fdatasync is {observed}{where_}, past the {limit} warning; \
             etcd will log slow fdatasync under load ({recipe}).{reference}",
            where_ = on_node(run, node)
        ),
        _ => format!(
            "No: {scope} 99th-percentile fdatasync is {observed}{where_}, over etcd's {limit} limit; \
             leader elections will time out ({recipe}).{reference}",
            where_ = on_node(run, node)
        ),
    };
    Some(Answer {
        question: QUESTIONS[0].1,
        text,
        status: Some(v.status),
        section: "probe-fsync".into(),
        chart,
    })
}

fn steal(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    let (node, v, _) = worst(run, "steal.pct")?;
    let observed = format::value(v.observed?, &v.unit);
    let facts = results_of(run, infraqual_probes::steal::NAME)
        .find(|(n, _)| n.name == node.name)
        .map(|(_, r)| &r.facts);
    let pct = |key: &str| facts.and_then(|f| f.get(key)).and_then(Value::as_f64);
    // Lost time the hypervisor did not take is this machine's own load; say
    // so, or a reader blames the neighbour for it.
    let lost_text = match (pct("lost_pct"), pct("guest_wait_pct")) {
        (Some(lost), Some(own)) if own >= 1.0 => format!(
            "; busy threads lost {} of their time, {} of it waiting behind this machine's own tasks",
            format::value(lost, "%"),
            format::value(own, "%")
        ),
        (Some(lost), _) => format!(
            "; busy threads lost {} of their time to anything",
            format::value(lost, "%")
        ),
        _ => String::new(),
    };
    let where_ = on_node(run, node);
    let text = match v.status {
        Status::Pass => format!(
            "No: the hypervisor took {observed} of the CPU{where_} (warning at {}){lost_text}.",
            v.threshold.map_or("-".into(), |_| warn_or_limit(run, v))
        ),
        Status::Warn => format!(
            "Somewhat: the hypervisor took {observed} of the CPU{where_}, past the warning{lost_text}."
        ),
        _ => format!(
            "Yes: the hypervisor took {observed} of the CPU{where_}, over the {} limit{lost_text}.",
            limit_text(v)
        ),
    };
    Some(Answer {
        question: QUESTIONS[1].1,
        text,
        status: Some(v.status),
        section: "probe-steal".into(),
        chart,
    })
}

/// The profile's warning level of a check, else its fail level.
fn warn_or_limit(run: &RunRecord, v: &Verdict) -> String {
    run.profile
        .checks
        .get(&v.check)
        .and_then(|t| t.warn)
        .map(|w| format::value(w, &v.unit))
        .unwrap_or_else(|| limit_text(v))
}

fn overlay(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    matched_overlay(run, chart.clone()).or_else(|| unmatched_overlay(run, chart))
}

/// From `overlay_overhead_matched` (runs since the rtt probe interleaves
/// its paths): the middle pair's matched difference with its interval, UDP
/// where measured, else TCP request/response.
fn matched_overlay(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    // (diff µs, ci low, ci high, pct, measurable, kind)
    let mut pairs: Vec<(f64, f64, f64, f64, bool, &str)> = Vec::new();
    for (_, r) in results_of(run, infraqual_probes::rtt::NAME) {
        let Some(Value::Object(map)) = r.facts.get("overlay_overhead_matched") else {
            continue;
        };
        for kinds in map.values() {
            let Some((kind, o)) = ["udp", "tcp_rr"]
                .iter()
                .find_map(|k| kinds.get(*k).map(|o| (*k, o)))
            else {
                continue;
            };
            let num = |key: &str| o.get(key).and_then(Value::as_f64);
            let ci = |i: usize| {
                o.get("ci95_us")
                    .and_then(|c| c.get(i))
                    .and_then(Value::as_f64)
            };
            let (Some(diff), Some(lo), Some(hi), Some(pct)) =
                (num("diff_us"), ci(0), ci(1), num("pct"))
            else {
                continue;
            };
            let measurable = o
                .get("measurable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            pairs.push((diff, lo, hi, pct, measurable, kind));
        }
    }
    if pairs.is_empty() {
        return None;
    }
    // The median pair: one pair's figure is as noisy as one sample of the
    // WAN's jitter, the middle of them is the overlay's cost.
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (diff, lo, hi, pct, measurable, kind) = pairs[pairs.len() / 2];
    let us = |x: f64| format::duration_ns(x.abs() * 1000.0);
    let signed = |x: f64| format!("{}{}", if x < 0.0 { "−" } else { "+" }, us(x));
    let interval = format!("95 % interval {} to {}", signed(lo), signed(hi));
    let cost = if !measurable {
        format!("Nothing measurable ({interval})")
    } else if diff > 0.0 {
        format!("{} per round trip, {pct:+.0} % ({interval})", us(diff))
    } else {
        format!("The overlay measured {} faster than native ({interval}): check that the native path is the plain underlay", us(diff))
    };
    Some(overlay_answer(
        format!(
            "{cost}: {}, overlay minus native measured in alternating rounds so both paths saw the same load",
            kind_words(kind)
        ),
        pairs.len(),
        chart,
    ))
}

/// "… , the middle of N node pairs." as the rtt section's answer.
fn overlay_answer(lead: String, pairs: usize, chart: Option<String>) -> Answer {
    Answer {
        question: QUESTIONS[2].1,
        text: format!(
            "{lead}, the middle of {pairs} node pair{}.",
            if pairs == 1 { "" } else { "s" }
        ),
        status: None,
        section: "probe-rtt".into(),
        chart,
    }
}

fn kind_words(kind: &str) -> &'static str {
    if kind == "tcp_rr" {
        "TCP request/response"
    } else {
        "UDP ping-pong"
    }
}

fn unmatched_overlay(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    // pair -> (p50 µs, p99 µs, kind)
    let mut pairs: Vec<(String, f64, f64, String)> = Vec::new();
    for (_, r) in results_of(run, infraqual_probes::rtt::NAME) {
        let Some(Value::Object(map)) = r.facts.get("overlay_overhead_us") else {
            continue;
        };
        for (pair, o) in map {
            let (Some(p50), Some(p99)) = (
                o.get("p50_us").and_then(Value::as_f64),
                o.get("p99_us").and_then(Value::as_f64),
            ) else {
                continue;
            };
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or("udp");
            pairs.push((pair.clone(), p50, p99, kind.to_string()));
        }
    }
    if pairs.is_empty() {
        return None;
    }
    // The median over node pairs: one pair's figure is as noisy as one
    // sample of the WAN's jitter, the middle of them is the overlay's cost.
    let middle = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let p50 = middle(pairs.iter().map(|p| p.1).collect());
    let p99 = middle(pairs.iter().map(|p| p.2).collect());
    let kind = kind_words(&pairs[0].3);
    let us = |x: f64| format::duration_ns(x * 1000.0);
    let cost = if p50 <= 0.0 {
        "Nothing measurable".to_string()
    } else {
        format!("{} per round trip", us(p50))
    };
    let tail = if p99 <= 0.0 {
        "within the path's jitter".to_string()
    } else {
        us(p99)
    };
    Some(overlay_answer(
        format!(
            "{cost} at the median (p99: {tail}): {kind} over the overlay minus the native path"
        ),
        pairs.len(),
        chart,
    ))
}

fn services(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    // count -> mode -> first-packet p50 (ns) to the end of the list
    let mut at: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    for (_, r) in results_of(run, infraqual_probes::services::NAME) {
        for (key, m) in &r.metrics {
            let parts: Vec<&str> = key.split('/').collect();
            let [mode, count, "end"] = parts.as_slice() else {
                continue;
            };
            let (Ok(count), true) = (count.parse::<u64>(), m.count > 0) else {
                continue;
            };
            let slot = at
                .entry(count)
                .or_default()
                .entry(mode.to_string())
                .or_insert(0);
            *slot = (*slot).max(m.p50);
        }
    }
    let (count, modes) = at.iter().next_back()?;
    let mut by_mode: Vec<(&String, &u64)> = modes.iter().collect();
    by_mode.sort_by_key(|(_, ns)| **ns);
    let list: Vec<String> = by_mode
        .iter()
        .map(|(mode, ns)| format!("{} with {mode}", format::duration_ns(**ns as f64)))
        .collect();
    let text = format!(
        "At {count} Services, a new connection to the last Service takes {} (median first packet).",
        list.join(", ")
    );
    Some(Answer {
        question: QUESTIONS[3].1,
        text,
        status: None,
        section: "probe-services".into(),
        chart,
    })
}

fn mtu(run: &RunRecord) -> Option<Answer> {
    // (path, largest packet that passed, black hole)
    let mut paths: Vec<(String, u64, bool)> = Vec::new();
    for (_, r) in results_of(run, infraqual_probes::mtu::NAME) {
        let Some(Value::Object(map)) = r.facts.get("paths") else {
            continue;
        };
        for (path, p) in map {
            let Some(max_packet) = p.get("max_packet").and_then(Value::as_u64) else {
                continue;
            };
            let blackhole = p.get("blackhole").and_then(Value::as_bool).unwrap_or(false);
            paths.push((path.clone(), max_packet, blackhole));
        }
    }
    let smallest = paths.iter().min_by_key(|p| p.1)?;
    let holes: Vec<&str> = paths.iter().filter(|p| p.2).map(|p| p.0.as_str()).collect();
    let (text, status) = if holes.is_empty() {
        (
            format!(
                "Nowhere silently: packets up to {} bytes pass on every path ({} paths; the smallest limit is on {}), and larger ones are refused with an ICMP message.",
                smallest.1,
                paths.len(),
                smallest.0.replace("->", " → ")
            ),
            Status::Pass,
        )
    } else {
        (
            format!(
                "On {}: packets above {} bytes vanish without an ICMP message (a black hole), so large transfers stall.",
                holes.join(", ").replace("->", " → "),
                smallest.1
            ),
            Status::Fail,
        )
    };
    Some(Answer {
        question: QUESTIONS[4].1,
        text,
        status: Some(status),
        section: "probe-mtu".into(),
        chart: None,
    })
}

fn regions(run: &RunRecord, chart: Option<String>) -> Option<Answer> {
    let rows = region_rtts(run);
    let costs = serial_costs(&rows);
    let farthest = costs.iter().max_by(|a, b| {
        a.extra_ns()
            .partial_cmp(&b.extra_ns())
            .unwrap_or(std::cmp::Ordering::Equal)
    })?;
    Some(Answer {
        question: QUESTIONS[5].1,
        text: format!("{}.", farthest.sentence()),
        status: None,
        section: "regions".into(),
        chart,
    })
}

#[cfg(test)]
mod tests {
    use infraqual_probes::{ProbeResult, Status, Verdict};
    use serde_json::json;

    use super::*;
    use crate::test_runs::{node, run};

    fn fsync_result(node_name: &str, p99_ns: f64, status: Status) -> ProbeResult {
        let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, node_name);
        r.facts.insert("mode".into(), json!("fio-etcd"));
        r.verdicts.push(Verdict {
            check: "fsync.fdatasync.p99".into(),
            status,
            observed: Some(p99_ns),
            threshold: Some(10e6),
            unit: "ns".into(),
            note: String::new(),
        });
        r
    }

    #[test]
    fn the_disk_answer_names_the_slowest_node_its_figure_and_the_limit() {
        let r = run(
            "r",
            vec![
                node("fast", &[], vec![fsync_result("fast", 2e6, Status::Pass)]),
                node("slow", &[], vec![fsync_result("slow", 14e6, Status::Fail)]),
            ],
        );
        let list = answers(&r, &["fsync-fdatasync", "steal-timeline-pct"]);
        assert_eq!(list.len(), 1, "only the disk was measured");
        let a = &list[0];
        assert_eq!(a.question, "Can this disk carry etcd?");
        assert_eq!(a.status, Some(Status::Fail));
        assert!(
            a.text.starts_with("No: the slowest disk's 99th-percentile fdatasync is 14.0 ms on slow, over etcd's 10.0 ms limit"),
            "{}",
            a.text
        );
        assert_eq!(a.section, "probe-fsync");
        assert_eq!(a.chart.as_deref(), Some("fsync-fdatasync"));
        let missing = unanswered(&list);
        assert_eq!(missing.len(), QUESTIONS.len() - 1);
    }

    #[test]
    fn the_overlay_cost_is_the_middle_pair_and_carries_no_verdict() {
        let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        r.facts.insert(
            "overlay_overhead_us".into(),
            json!({
                "a->b": {"kind": "udp", "p50_us": 30.0, "p99_us": 80.0},
                "a->c": {"kind": "udp", "p50_us": 500.0, "p99_us": -20.0},
                "b->c": {"kind": "udp", "p50_us": 40.0, "p99_us": 90.0},
            }),
        );
        let list = answers(&run("r", vec![node("a", &[], vec![r])]), &[]);
        let a = &list[0];
        assert_eq!(a.status, None);
        assert!(
            a.text
                .starts_with("40.0 µs per round trip at the median (p99: 80.0 µs)"),
            "{}",
            a.text
        );
    }

    #[test]
    fn the_matched_overlay_cost_comes_with_its_interval() {
        let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        let entry = |diff: f64, lo: f64, hi: f64, measurable: bool| {
            json!({"udp": {"blocks": 40, "diff_us": diff, "ci95_us": [lo, hi], "pct": 20.0,
                           "measurable": measurable, "summary": ""}})
        };
        r.facts.insert(
            "overlay_overhead_matched".into(),
            json!({"a->b": entry(4.1, 3.2, 5.0, true), "a->c": entry(9.0, 8.0, 10.0, true),
                   "a->d": entry(1.0, -1.0, 2.0, false)}),
        );
        let list = answers(&run("r", vec![node("a", &[], vec![r.clone()])]), &[]);
        assert!(
            list[0]
                .text
                .starts_with("4.10 µs per round trip, +20 % (95 % interval +3.20 µs to +5.00 µs)"),
            "{}",
            list[0].text
        );
        r.facts.insert(
            "overlay_overhead_matched".into(),
            json!({"a->d": entry(1.0, -1.0, 2.0, false)}),
        );
        let list = answers(&run("r", vec![node("a", &[], vec![r])]), &[]);
        assert!(
            list[0].text.starts_with("Nothing measurable"),
            "{}",
            list[0].text
        );
    }

    #[test]
    fn the_page_opens_with_the_answers() {
        let r = run(
            "r",
            vec![node("n", &[], vec![fsync_result("n", 2e6, Status::Pass)])],
        );
        use crate::export::Exporter as _;
        let files = crate::export::html::HtmlExporter { charts: &[] }
            .export(&r)
            .unwrap();
        let html = String::from_utf8(files[0].bytes.clone()).unwrap();
        let answers = html.find("<section id=\"answers\">").unwrap();
        let checks = html.find("id=\"checks\"").unwrap();
        assert!(answers < checks && html[..answers].matches("<h2").count() == 0);
        assert!(html.contains("Yes: the 99th-percentile fdatasync is 2.00 ms"));
    }
}
