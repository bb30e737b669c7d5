//! Regions: when nodes carry a `region` label and the run has rtt metrics
//! (`<src>-><dst>/<path>/<kind>`), the round trip between regions, and what
//! it costs an application that makes its calls one after another
//! (ANCHORS.md: ten serial database calls from Frankfurt cost about 250 ms
//! more than from Oslo).

use std::collections::BTreeMap;

use infraqual_probes::LatencyHistogram;
use serde::Serialize;

use crate::bundle::RunRecord;
use crate::format;

/// Round trips an application makes one after another per request.
pub const SERIAL_ROUND_TRIPS: u32 = 10;

/// The label that names a node's region.
pub const REGION_LABEL: &str = "region";

/// Round-trip latency from one region to another, node pairs merged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionRtt {
    pub from: String,
    pub to: String,
    pub path: String,
    pub kind: String,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Every region pair of one run; empty when the nodes have no region labels
/// or the run has no rtt metrics.
pub fn region_rtts(run: &RunRecord) -> Vec<RegionRtt> {
    let region_of: BTreeMap<&str, &str> = run
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.labels.get(REGION_LABEL)?.as_str())))
        .collect();
    let mut merged: BTreeMap<(String, String, String, String), LatencyHistogram> = BTreeMap::new();
    for (_, r) in run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::rtt::NAME)
    {
        for (key, summary) in &r.metrics {
            let Some((src, dst, path, kind)) = parse_rtt_key(key) else {
                continue;
            };
            let (Some(from), Some(to)) = (region_of.get(src), region_of.get(dst)) else {
                continue;
            };
            let Ok(hist) = summary.histogram() else {
                continue;
            };
            let entry = merged
                .entry((from.to_string(), to.to_string(), path.into(), kind.into()))
                .or_default();
            // Merged by adding; a histogram that will not merge is left out.
            let _ = entry.merge(&hist);
        }
    }
    merged
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|((from, to, path, kind), h)| RegionRtt {
            from,
            to,
            path,
            kind,
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
        })
        .collect()
}

/// `<src>-><dst>/<path>/<kind>` to its parts.
pub fn parse_rtt_key(key: &str) -> Option<(&str, &str, &str, &str)> {
    let (pair, rest) = key.split_once('/')?;
    let (path, kind) = rest.split_once('/')?;
    let (src, dst) = pair.split_once("->")?;
    (!src.is_empty() && !dst.is_empty()).then_some((src, dst, path, kind))
}

/// The round trip a serial caller waits for: request/response over TCP
/// when measured, else UDP ping-pong; the native path before the others.
pub fn serial_basis(rows: &[RegionRtt]) -> Option<(String, String)> {
    let kinds = ["tcp_rr", "udp"];
    let mut best: Option<(usize, bool, &RegionRtt)> = None;
    for r in rows {
        let Some(rank) = kinds.iter().position(|k| *k == r.kind) else {
            continue;
        };
        let candidate = (rank, r.path != "native", r);
        if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
            best = Some(candidate);
        }
    }
    best.map(|(_, _, r)| (r.path.clone(), r.kind.clone()))
}

fn basis_rows<'a>(rows: &'a [RegionRtt], basis: &(String, String)) -> Vec<&'a RegionRtt> {
    rows.iter()
        .filter(|r| r.path == basis.0 && r.kind == basis.1)
        .collect()
}

/// Within one run: for each destination region reached from several
/// regions, what the serial round trips cost from each source beyond the
/// closest one.
pub fn impact_within(label: &str, rows: &[RegionRtt]) -> Vec<String> {
    let Some(basis) = serial_basis(rows) else {
        return Vec::new();
    };
    let rows = basis_rows(rows, &basis);
    let mut by_dst: BTreeMap<&str, Vec<&RegionRtt>> = BTreeMap::new();
    for r in rows {
        by_dst.entry(r.to.as_str()).or_default().push(r);
    }
    let mut lines = Vec::new();
    for (dst, sources) in by_dst {
        let Some(closest) = sources.iter().min_by_key(|r| r.p50_ns) else {
            continue;
        };
        for s in sources.iter().filter(|s| s.from != closest.from) {
            let extra = f64::from(SERIAL_ROUND_TRIPS) * (s.p50_ns as f64 - closest.p50_ns as f64);
            lines.push(format!(
                "{label}: {SERIAL_ROUND_TRIPS} serial round trips to {dst} from {} cost {} more \
                 than from {} (median {} {} round trip {} vs {})",
                s.from,
                format::duration_ns(extra),
                closest.from,
                basis.0,
                basis.1,
                format::duration_ns(s.p50_ns as f64),
                format::duration_ns(closest.p50_ns as f64),
            ));
        }
    }
    lines
}

/// Across runs: the same region pair measured in A and in B.
pub fn impact_across(
    label_a: &str,
    a: &[RegionRtt],
    label_b: &str,
    b: &[RegionRtt],
) -> Vec<String> {
    let (Some(basis_a), Some(basis_b)) = (serial_basis(a), serial_basis(b)) else {
        return Vec::new();
    };
    if basis_a != basis_b {
        return Vec::new();
    }
    let rows_b = basis_rows(b, &basis_b);
    let mut lines = Vec::new();
    for ra in basis_rows(a, &basis_a) {
        let Some(rb) = rows_b.iter().find(|r| r.from == ra.from && r.to == ra.to) else {
            continue;
        };
        let extra = f64::from(SERIAL_ROUND_TRIPS) * (rb.p50_ns as f64 - ra.p50_ns as f64);
        let (more_or_less, amount) = if extra >= 0.0 {
            ("more", extra)
        } else {
            ("less", -extra)
        };
        lines.push(format!(
            "{SERIAL_ROUND_TRIPS} serial round trips from {} to {} cost {} {more_or_less} in \
             {label_b} than in {label_a} ({} {} median {} vs {})",
            ra.from,
            ra.to,
            format::duration_ns(amount),
            basis_a.0,
            basis_a.1,
            format::duration_ns(rb.p50_ns as f64),
            format::duration_ns(ra.p50_ns as f64),
        ));
    }
    lines
}

/// (from, to, path, kind)
type RegionKey = (String, String, String, String);

/// A region pair's median round trip in A and in B.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedRow {
    pub from: String,
    pub to: String,
    pub path: String,
    pub kind: String,
    pub a_p50_ns: Option<u64>,
    pub b_p50_ns: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RegionReport {
    pub a: Vec<RegionRtt>,
    pub b: Vec<RegionRtt>,
    pub impact: Vec<String>,
}

impl RegionReport {
    pub fn of(label_a: &str, a: &RunRecord, label_b: &str, b: &RunRecord) -> Option<Self> {
        let (ra, rb) = (region_rtts(a), region_rtts(b));
        if ra.is_empty() && rb.is_empty() {
            return None;
        }
        let mut impact = impact_within(label_a, &ra);
        impact.extend(impact_within(label_b, &rb));
        impact.extend(impact_across(label_a, &ra, label_b, &rb));
        Some(RegionReport {
            a: ra,
            b: rb,
            impact,
        })
    }

    /// One row per (from, to, path, kind) in either run: A's and B's median.
    pub fn joined(&self) -> Vec<JoinedRow> {
        let mut rows: BTreeMap<RegionKey, JoinedRow> = BTreeMap::new();
        for (side, list) in [(0, &self.a), (1, &self.b)] {
            for r in list.iter() {
                let key = (r.from.clone(), r.to.clone(), r.path.clone(), r.kind.clone());
                let row = rows.entry(key).or_insert_with(|| JoinedRow {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    path: r.path.clone(),
                    kind: r.kind.clone(),
                    a_p50_ns: None,
                    b_p50_ns: None,
                });
                if side == 0 {
                    row.a_p50_ns = Some(r.p50_ns);
                } else {
                    row.b_p50_ns = Some(r.p50_ns);
                }
            }
        }
        rows.into_values().collect()
    }
}
