//! Turning measurements into the result contract: metric keys, the per-mode
//! slope and end/front ratio, and KEP-3866's published figures beside them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::layout::Position;
use super::modes::Mode;

/// `<mode>/<count>/<position>`, the metric key docs/result-contract.md fixes.
pub fn metric_key(mode: Mode, count: usize, position: Position) -> String {
    format!("{mode}/{count}/{}", position.as_str())
}

/// `<mode>/<count>`, the key of the per-count facts.
pub fn count_key(mode: Mode, count: usize) -> String {
    format!("{mode}/{count}")
}

/// Least-squares slope of y over x; None with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(sxy / sxx)
}

/// p50 connect latency (ns) per mode, position and count, collected while
/// the sweep runs, summarised once at the end.
#[derive(Debug, Default)]
pub struct Medians {
    by_mode: BTreeMap<Mode, BTreeMap<(usize, &'static str), u64>>,
}

impl Medians {
    pub fn add(&mut self, mode: Mode, count: usize, position: Position, p50_ns: u64) {
        self.by_mode
            .entry(mode)
            .or_default()
            .insert((count, position.as_str()), p50_ns);
    }

    /// `slope_us_per_1000["<mode>/<position>"]`: how many µs the median
    /// first packet gains per 1,000 more services (least squares over the
    /// counts measured).
    pub fn slopes(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (mode, values) in &self.by_mode {
            for position in [Position::Front, Position::Middle, Position::End] {
                let points: Vec<(f64, f64)> = values
                    .iter()
                    .filter(|((_, p), _)| *p == position.as_str())
                    .map(|((count, _), ns)| (*count as f64 / 1000.0, *ns as f64 / 1000.0))
                    .collect();
                if let Some(s) = slope(&points) {
                    out.insert(format!("{mode}/{}", position.as_str()), json!(round2(s)));
                }
            }
        }
        out
    }

    /// `end_front_ratio["<mode>"]`: p50(end) / p50(front) at the largest count.
    pub fn end_front_ratios(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (mode, values) in &self.by_mode {
            let Some(largest) = values.keys().map(|(c, _)| *c).max() else {
                continue;
            };
            let front = values.get(&(largest, Position::Front.as_str()));
            let end = values.get(&(largest, Position::End.as_str()));
            if let (Some(&front), Some(&end)) = (front, end) {
                if front > 0 {
                    out.insert(
                        mode.to_string(),
                        json!({ "count": largest, "ratio": round2(end as f64 / front as f64) }),
                    );
                }
            }
        }
        out
    }
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// KEP-3866's first-packet latency figures (the nftables kube-proxy KEP,
/// kubernetes/enhancements keps/sig-network/3866-nftables-proxy, read from
/// its chart, ± 4 µs), shown beside ours as facts.
pub fn kep3866_reference() -> Value {
    let row = |mode: &str, services: Value, p50: u32, p90: u32, p99: u32| json!({ "mode": mode, "services": services, "p50_us": p50, "p90_us": p90, "p99_us": p99 });
    json!({
        "source": "KEP-3866 (nftables kube-proxy), first-packet latency, read from its chart, ± 4 µs",
        "rows": [
            row("iptables", json!(5000), 47, 118, 154),
            row("iptables", json!(10000), 59, 185, 260),
            row("iptables", json!(30000), 272, 489, 713),
            row("nftables", json!("any"), 12, 20, 35),
        ],
        "note": "KEP-3866 measured pod-to-service traffic on a cluster node; this probe measures \
                 node-originated connects (the OUTPUT hook) over a veth, so compare shapes \
                 (growth with the service count) more than absolute values",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_too_little() {
        let points = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)];
        assert_eq!(slope(&points), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn medians_give_slopes_in_us_per_thousand_and_ratios_at_the_largest_count() {
        let mut m = Medians::default();
        // 20 µs + 5 µs per 1,000 services at the end; flat 20 µs at the front.
        for count in [1000usize, 5000, 10_000] {
            m.add(Mode::IptablesNft, count, Position::Front, 20_000);
            m.add(
                Mode::IptablesNft,
                count,
                Position::End,
                20_000 + count as u64 * 5,
            );
        }
        let slopes = m.slopes();
        assert_eq!(slopes["iptables-nft/end"], json!(5.0));
        assert_eq!(slopes["iptables-nft/front"], json!(0.0));
        let ratios = m.end_front_ratios();
        assert_eq!(ratios["iptables-nft"]["count"], json!(10_000));
        assert_eq!(ratios["iptables-nft"]["ratio"], json!(3.5));
    }

    #[test]
    fn keys_follow_the_contract() {
        assert_eq!(
            metric_key(Mode::Nftables, 1000, Position::End),
            "nftables/1000/end"
        );
        assert_eq!(count_key(Mode::IptablesLegacy, 10), "iptables-legacy/10");
        assert_eq!(kep3866_reference()["rows"][1]["p50_us"], json!(59));
    }
}
