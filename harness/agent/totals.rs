//! What every finished job added up to since the agent started: the counts
//! behind /metrics' histograms and counters. Prometheus wants cumulative
//! series (so that `rate` and `histogram_quantile` work across nodes and
//! time), so each result is folded into bucket counts once, as it arrives.

use std::collections::BTreeMap;

use infraqual_probes::{ProbeName, ProbeResult};

use super::buckets;

/// One latency series: cumulative counts per bucket of its probe.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyTotal {
    /// Upper bounds in ns, ascending; `counts[i]` counts values <= bounds[i].
    pub bounds_ns: Vec<u64>,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_ns: f64,
}

/// Sent and lost UDP probes on one rtt path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossTotal {
    pub sent: u64,
    pub lost: u64,
    pub errors: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub latency: BTreeMap<(ProbeName, String), LatencyTotal>,
    /// Jobs by probe and outcome (`done`, `failed`, `cancelled`).
    pub runs: BTreeMap<(ProbeName, &'static str), u64>,
    pub rtt_loss: BTreeMap<String, LossTotal>,
}

impl Totals {
    pub fn record_outcome(&mut self, probe: ProbeName, outcome: &'static str) {
        *self.runs.entry((probe, outcome)).or_default() += 1;
    }

    /// Folds a result's nanosecond histograms and rtt loss in; a histogram
    /// that does not decode is skipped and named in the returned list.
    pub fn record_result(&mut self, result: &ProbeResult) -> Vec<String> {
        let mut undecodable = Vec::new();
        for (name, summary) in result.metrics.iter().filter(|(_, m)| m.unit == "ns") {
            let hist = match summary.histogram() {
                Ok(h) => h,
                Err(e) => {
                    undecodable.push(format!("{}/{name}: {e}", result.probe));
                    continue;
                }
            };
            let total = self
                .latency
                .entry((result.probe, name.clone()))
                .or_insert_with(|| {
                    let bounds_ns = buckets::latency_bounds_ns(result.probe);
                    LatencyTotal {
                        counts: vec![0; bounds_ns.len()],
                        bounds_ns,
                        count: 0,
                        sum_ns: 0.0,
                    }
                });
            for v in hist.inner().iter_recorded() {
                // The lowest value of the HdrHistogram sub-bucket decides: a
                // value exactly on a bound counts in that bound's bucket, as
                // Prometheus' `le` says, and any other within 0.1 % of it.
                let value = hist.inner().lowest_equivalent(v.value_iterated_to());
                let n = v.count_at_value();
                for (bound, count) in total.bounds_ns.iter().zip(total.counts.iter_mut()) {
                    if value <= *bound {
                        *count += n;
                    }
                }
            }
            total.count += hist.len();
            total.sum_ns += hist.mean() * hist.len() as f64;
        }
        if result.probe == infraqual_probes::rtt::NAME {
            self.record_loss(result);
        }
        undecodable
    }

    fn record_loss(&mut self, result: &ProbeResult) {
        let Some(paths) = result.facts.get("loss").and_then(|v| v.as_object()) else {
            return;
        };
        for (path, fact) in paths {
            let field = |k: &str| fact.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let total = self.rtt_loss.entry(path.clone()).or_default();
            total.sent += field("sent");
            total.lost += field("lost");
            total.errors += field("errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use infraqual_probes::histogram::LatencyHistogram;

    use super::*;

    #[test]
    fn results_add_up_into_cumulative_buckets() {
        let mut hist = LatencyHistogram::new();
        for v in [200_000u64, 900_000, 1_000_000, 3_000_000, 20_000_000_000] {
            hist.record(v);
        }
        let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, "n");
        r.metric("fdatasync", &hist, "ns").unwrap();
        let mut totals = Totals::default();
        totals.record_result(&r);
        totals.record_result(&r);
        let t = &totals.latency[&(infraqual_probes::fsync::NAME, "fdatasync".to_string())];
        let at = |ns: u64| t.counts[t.bounds_ns.iter().position(|&b| b == ns).unwrap()];
        assert_eq!(at(100_000), 0);
        assert_eq!(at(250_000), 2);
        assert_eq!(at(1_000_000), 6, "1 ms itself is in the 1 ms bucket");
        assert_eq!(at(4_000_000), 8);
        assert_eq!(at(8_192_000_000), 8, "20 s is only in +Inf");
        assert_eq!(t.count, 10);
    }

    #[test]
    fn rtt_loss_accumulates_per_path() {
        let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
        r.fact(
            "loss",
            serde_json::json!({"a->b/native": {"sent": 100, "lost": 3, "errors": 1}}),
        );
        let mut totals = Totals::default();
        totals.record_result(&r);
        totals.record_result(&r);
        assert_eq!(
            totals.rtt_loss["a->b/native"],
            LossTotal {
                sent: 200,
                lost: 6,
                errors: 2
            }
        );
    }
}
