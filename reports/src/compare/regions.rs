//! Regions across two runs: each run's region pairs side by side, each
//! run's serial round-trip cost (the same sentence the report prints), and
//! what the same region pair costs in B beyond A.

use std::collections::BTreeMap;

use infraqual_probes::rtt::Kind;
use serde::Serialize;

use crate::bundle::RunRecord;
use crate::format;
use crate::regions::{region_rtts, serial_costs, RegionRtt, SerialBasis, SERIAL_ROUND_TRIPS};

/// Within one run, labelled: `A: 10 serial round trips to ...`.
pub fn impact_within(label: &str, rows: &[RegionRtt]) -> Vec<String> {
    serial_costs(rows)
        .iter()
        .map(|c| format!("{label}: {}", c.sentence()))
        .collect()
}

/// Across runs: the same region pair measured in A and in B.
pub fn impact_across(
    label_a: &str,
    a: &[RegionRtt],
    label_b: &str,
    b: &[RegionRtt],
) -> Vec<String> {
    let (Some(basis), Some(basis_b)) = (SerialBasis::of(a), SerialBasis::of(b)) else {
        return Vec::new();
    };
    if basis != basis_b {
        return Vec::new();
    }
    let rows_b = basis.rows(b);
    let mut lines = Vec::new();
    for ra in basis.rows(a) {
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
             {label_b} than in {label_a} (from {}: {} vs {})",
            ra.from,
            ra.to,
            format::duration_ns(amount),
            basis.describe(),
            format::duration_ns(rb.p50_ns as f64),
            format::duration_ns(ra.p50_ns as f64),
        ));
    }
    lines
}

/// (from, to, path, kind)
type RegionKey = (String, String, String, Kind);

/// A region pair's median round trip in A and in B.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedRow {
    pub from: String,
    pub to: String,
    pub path: String,
    pub kind: Kind,
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
                let key = (r.from.clone(), r.to.clone(), r.path.clone(), r.kind);
                let row = rows.entry(key).or_insert_with(|| JoinedRow {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    path: r.path.clone(),
                    kind: r.kind,
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
