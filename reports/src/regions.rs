//! Round trips between regions: when nodes carry a `region` label and the
//! run has rtt metrics, the round trip from each region to each other, and
//! what it costs an application that makes its calls one after another
//! ("10 serial round trips to oslo from frankfurt cost 240 ms more than from
//! oslo"). The report and `compare` both print that sentence from here, so
//! one run never gives two figures.

use std::collections::BTreeMap;

use infraqual_probes::rtt::key::RttMetricKey;
use infraqual_probes::rtt::Kind;
use infraqual_probes::LatencyHistogram;
use serde::Serialize;

use crate::bundle::RunRecord;
use crate::format;

/// Round trips an application makes one after another per request (ten
/// database calls).
pub const SERIAL_ROUND_TRIPS: u32 = 10;

/// The label that names a node's region.
pub const REGION_LABEL: &str = "region";

/// Round-trip latency from one region to another on one path and kind:
/// the histograms of every node pair between the two regions merged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionRtt {
    pub from: String,
    pub to: String,
    pub path: String,
    pub kind: Kind,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Every region pair of one run, ordered by (from, to, path, kind); empty
/// when the nodes have no region labels or the run has no rtt metrics.
///
/// Node pairs are combined by merging their histograms and taking
/// percentiles last: the p50 is then the median of every round trip
/// measured between the two regions. A mean of per-node medians is the
/// median of nothing and counts a node with a hundred samples as much as
/// one with ten thousand.
/// Each labelled node's region.
pub fn region_of(run: &RunRecord) -> BTreeMap<&str, &str> {
    run.nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.labels.get(REGION_LABEL)?.as_str())))
        .collect()
}

pub fn region_rtts(run: &RunRecord) -> Vec<RegionRtt> {
    let region_of = region_of(run);
    let mut merged: BTreeMap<(String, String, String, Kind), LatencyHistogram> = BTreeMap::new();
    for (_, r) in run
        .results()
        .filter(|(_, r)| r.probe == infraqual_probes::rtt::NAME)
    {
        for (name, summary) in &r.metrics {
            let Ok(key) = name.parse::<RttMetricKey>() else {
                continue;
            };
            let (Some(from), Some(to)) = (
                region_of.get(key.source.as_str()),
                region_of.get(key.target.as_str()),
            ) else {
                continue;
            };
            let Ok(hist) = summary.histogram() else {
                continue;
            };
            let entry = merged
                .entry((from.to_string(), to.to_string(), key.path, key.kind))
                .or_default();
            // A histogram that will not merge (another precision) is left
            // out rather than failing the whole table.
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

/// Which measurements "N serial round trips cost X more" is computed from:
/// one path and one kind, their merged histograms' p50.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SerialBasis {
    pub path: String,
    pub kind: Kind,
}

/// The path preferred for the serial cost.
const NATIVE_PATH: &str = "native";

impl SerialBasis {
    /// The rule, first that was measured:
    /// - kind: TCP request/response, else UDP ping-pong. A database call or
    ///   an RPC is a request and its reply on an open connection, which is
    ///   what tcp_rr times; a connect is paid once per connection, not per
    ///   call.
    /// - path: native, else any other in name order. The distance between
    ///   regions is the WAN's; the overlay adds its encapsulation on both
    ///   sides of the difference, where it cancels (the rtt probe reports it
    ///   as `overlay_overhead_us`), and native is measured in every run, so
    ///   runs compare on the same basis.
    /// - statistic: the p50 of merged histograms ([`region_rtts`]); ten
    ///   serial calls add up ten typical round trips, and a median is not
    ///   moved by the odd retransmit (p99 stands beside it in the tables).
    pub fn of(rows: &[RegionRtt]) -> Option<Self> {
        let kind_rank = |k: Kind| match k {
            Kind::TcpRr => Some(0),
            Kind::Udp => Some(1),
            Kind::TcpConnect => None,
        };
        rows.iter()
            .filter_map(|r| Some(((kind_rank(r.kind)?, r.path != NATIVE_PATH, &r.path), r)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, r)| SerialBasis {
                path: r.path.clone(),
                kind: r.kind,
            })
    }

    pub fn rows<'a>(&self, rows: &'a [RegionRtt]) -> Vec<&'a RegionRtt> {
        rows.iter()
            .filter(|r| r.path == self.path && r.kind == self.kind)
            .collect()
    }

    /// Where the figures come from, in words: `merged histograms, native
    /// path, TCP request/response`.
    pub fn source(&self) -> String {
        format!(
            "merged histograms, {} path, {}",
            self.path,
            kind_label(self.kind)
        )
    }

    /// The statistic the serial cost is computed from, in words: `merged
    /// histograms, native path, TCP request/response p50`.
    pub fn describe(&self) -> String {
        format!("{} p50", self.source())
    }
}

pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Udp => "UDP ping-pong",
        Kind::TcpRr => "TCP request/response",
        Kind::TcpConnect => "TCP connect",
    }
}

/// Within one run: what the serial round trips to `to` cost from `from`
/// beyond what they cost from the closest region.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SerialCost {
    pub to: String,
    pub from: String,
    pub closest: String,
    pub from_p50_ns: u64,
    pub closest_p50_ns: u64,
    pub basis: SerialBasis,
}

impl SerialCost {
    pub fn extra_ns(&self) -> f64 {
        f64::from(SERIAL_ROUND_TRIPS) * (self.from_p50_ns as f64 - self.closest_p50_ns as f64)
    }

    /// The one sentence the report and `compare` print.
    pub fn sentence(&self) -> String {
        format!(
            "{SERIAL_ROUND_TRIPS} serial round trips to {} from {} cost {} more than from {} \
             (from {}: {} vs {})",
            self.to,
            self.from,
            format::duration_ns(self.extra_ns()),
            self.closest,
            self.basis.describe(),
            format::duration_ns(self.from_p50_ns as f64),
            format::duration_ns(self.closest_p50_ns as f64),
        )
    }
}

/// For each destination region reached from several regions, one
/// [`SerialCost`] per source other than the closest, on the
/// [`SerialBasis`] of `rows`.
pub fn serial_costs(rows: &[RegionRtt]) -> Vec<SerialCost> {
    let Some(basis) = SerialBasis::of(rows) else {
        return Vec::new();
    };
    let mut by_dst: BTreeMap<&str, Vec<&RegionRtt>> = BTreeMap::new();
    for r in basis.rows(rows) {
        by_dst.entry(r.to.as_str()).or_default().push(r);
    }
    let mut costs = Vec::new();
    for (dst, sources) in by_dst {
        let Some(closest) = sources.iter().min_by_key(|r| r.p50_ns) else {
            continue;
        };
        for s in sources.iter().filter(|s| s.from != closest.from) {
            costs.push(SerialCost {
                to: dst.to_string(),
                from: s.from.clone(),
                closest: closest.from.clone(),
                from_p50_ns: s.p50_ns,
                closest_p50_ns: closest.p50_ns,
                basis: basis.clone(),
            });
        }
    }
    costs
}

#[cfg(test)]
mod tests;
