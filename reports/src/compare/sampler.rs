//! Drawing values from a recorded histogram: a seeded PRNG (SplitMix64, so a
//! seed always gives the same stream on every platform) and Walker's alias
//! table over the histogram's buckets, so one draw costs O(1) whatever the
//! number of buckets.

use infraqual_probes::LatencyHistogram;

pub use infraqual_probes::random::{stream_seed, SplitMix64};

/// A histogram's recorded distribution as (value, count) buckets, ready
/// for O(1) sampling and for quantiles of bucket counts.
#[derive(Clone, Debug)]
pub struct Distribution {
    /// Representative value of each bucket (its highest equivalent value,
    /// as `value_at_quantile` reports), ascending.
    pub values: Vec<u64>,
    pub counts: Vec<u64>,
    pub total: u64,
    alias_prob: Vec<f64>,
    alias_index: Vec<usize>,
}

impl Distribution {
    /// None for an empty histogram.
    pub fn of(hist: &LatencyHistogram) -> Option<Self> {
        let mut values = Vec::new();
        let mut counts = Vec::new();
        for step in hist.inner().iter_recorded() {
            values.push(step.value_iterated_to());
            counts.push(step.count_at_value());
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let (alias_prob, alias_index) = alias_table(&counts, total);
        Some(Distribution {
            values,
            counts,
            total,
            alias_prob,
            alias_index,
        })
    }

    /// A bucket index drawn with probability count/total.
    pub fn draw(&self, rng: &mut SplitMix64) -> usize {
        let i = rng.below(self.counts.len());
        if rng.next_f64() < self.alias_prob[i] {
            i
        } else {
            self.alias_index[i]
        }
    }

    /// The value at quantile `q` of the recorded counts.
    pub fn quantile(&self, q: f64) -> u64 {
        quantile_of_counts(&self.values, &self.counts, self.total, q)
    }
}

/// The smallest bucket value whose cumulative count reaches ceil(q * total)
/// (at least the first sample), the definition HdrHistogram uses.
pub fn quantile_of_counts(values: &[u64], counts: &[u64], total: u64, q: f64) -> u64 {
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (v, c) in values.iter().zip(counts) {
        seen += c;
        if seen >= rank {
            return *v;
        }
    }
    values.last().copied().unwrap_or(0)
}

/// Vose's stable construction of Walker's alias table.
fn alias_table(counts: &[u64], total: u64) -> (Vec<f64>, Vec<usize>) {
    let n = counts.len();
    let mut prob: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 * n as f64 / total as f64)
        .collect();
    let mut alias: Vec<usize> = (0..n).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        alias[s] = l;
        prob[l] -= 1.0 - prob[s];
        if prob[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // Leftovers are 1 up to rounding.
    for i in large.into_iter().chain(small) {
        prob[i] = 1.0;
    }
    (prob, alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs for seed 1234567 from the reference C implementation.
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn draws_follow_the_recorded_counts() {
        let mut h = LatencyHistogram::new();
        for _ in 0..700 {
            h.record(1_000);
        }
        for _ in 0..200 {
            h.record(5_000);
        }
        for _ in 0..100 {
            h.record(90_000);
        }
        let d = Distribution::of(&h).unwrap();
        assert_eq!(d.total, 1000);
        let mut rng = SplitMix64::new(7);
        let mut seen = vec![0u64; d.values.len()];
        for _ in 0..100_000 {
            seen[d.draw(&mut rng)] += 1;
        }
        let share: Vec<f64> = seen.iter().map(|&c| c as f64 / 100_000.0).collect();
        assert!((share[0] - 0.7).abs() < 0.01, "{share:?}");
        assert!((share[1] - 0.2).abs() < 0.01, "{share:?}");
        assert!((share[2] - 0.1).abs() < 0.01, "{share:?}");
        assert_eq!(d.quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(d.quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(d.quantile(0.0), d.values[0]);
    }

    #[test]
    fn empty_histograms_have_no_distribution() {
        assert!(Distribution::of(&LatencyHistogram::new()).is_none());
    }
}
