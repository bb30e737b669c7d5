//! Bootstrap confidence intervals for the relative change of a quantile
//! between two recorded latency distributions (criterion.rs's model: the
//! statistics here know nothing of reports or verdicts).
//!
//! One resample draws N values from each side's recorded distribution with
//! a seeded PRNG (N = the recorded count, capped for cost), takes the
//! quantile of each, and keeps B/A - 1. The interval is the 2.5 and 97.5
//! percentiles of those ratios.

use serde::Serialize;

use super::sampler::{quantile_of_counts, Distribution, SplitMix64};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BootstrapConfig {
    pub resamples: usize,
    /// Upper bound on the values drawn per side and resample.
    pub max_draws: u64,
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 2000,
            max_draws: 10_000,
            confidence: 0.95,
        }
    }
}

/// Relative change B/A - 1 of one statistic, as a fraction (0.05 = +5 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Change {
    /// From the recorded histograms themselves.
    pub point: f64,
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
    /// Values drawn per side in each resample.
    pub draws_a: u64,
    pub draws_b: u64,
    pub resamples: usize,
}

/// Changes of several quantiles at once (every quantile of one resample
/// comes from the same draws, which halves the cost of asking for p50 and
/// p99). None when either side has no samples or a zero statistic.
pub fn quantile_changes(
    a: &Distribution,
    b: &Distribution,
    quantiles: &[f64],
    config: &BootstrapConfig,
    rng: &mut SplitMix64,
) -> Vec<Option<Change>> {
    let draws_a = a.total.min(config.max_draws).max(1);
    let draws_b = b.total.min(config.max_draws).max(1);
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); quantiles.len()];
    let mut counts_a = vec![0u64; a.values.len()];
    let mut counts_b = vec![0u64; b.values.len()];
    for _ in 0..config.resamples {
        resample(a, draws_a, rng, &mut counts_a);
        resample(b, draws_b, rng, &mut counts_b);
        for (qi, q) in quantiles.iter().enumerate() {
            let sa = quantile_of_counts(&a.values, &counts_a, draws_a, *q) as f64;
            let sb = quantile_of_counts(&b.values, &counts_b, draws_b, *q) as f64;
            if sa > 0.0 {
                ratios[qi].push(sb / sa - 1.0);
            }
        }
    }
    let tail = (1.0 - config.confidence) / 2.0;
    quantiles
        .iter()
        .zip(ratios)
        .map(|(q, mut r)| {
            let sa = a.quantile(*q) as f64;
            if sa <= 0.0 || r.len() < config.resamples {
                return None;
            }
            r.sort_by(f64::total_cmp);
            Some(Change {
                point: b.quantile(*q) as f64 / sa - 1.0,
                low: percentile_of_sorted(&r, tail),
                high: percentile_of_sorted(&r, 1.0 - tail),
                confidence: config.confidence,
                draws_a,
                draws_b,
                resamples: config.resamples,
            })
        })
        .collect()
}

fn resample(d: &Distribution, draws: u64, rng: &mut SplitMix64, counts: &mut [u64]) {
    counts.iter_mut().for_each(|c| *c = 0);
    for _ in 0..draws {
        counts[d.draw(rng)] += 1;
    }
}

/// Linear interpolation between closest ranks.
fn percentile_of_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::LatencyHistogram;

    /// A deterministic, noisy distribution around `center` ns.
    fn spread(center: u64, n: u64, salt: u64) -> Distribution {
        let mut rng = SplitMix64::new(salt);
        let mut h = LatencyHistogram::new();
        for _ in 0..n {
            // Log-normal-ish: center * exp(0.3 * approx normal).
            let z: f64 = (0..6).map(|_| rng.next_f64()).sum::<f64>() - 3.0;
            h.record((center as f64 * (0.3 * z).exp()) as u64);
        }
        Distribution::of(&h).unwrap()
    }

    fn config() -> BootstrapConfig {
        BootstrapConfig {
            resamples: 400,
            ..BootstrapConfig::default()
        }
    }

    #[test]
    fn a_known_shift_is_inside_an_interval_that_excludes_zero() {
        let a = spread(1_000_000, 3000, 1);
        let b = spread(1_300_000, 3000, 2);
        let mut rng = SplitMix64::new(42);
        let c = quantile_changes(&a, &b, &[0.5, 0.99], &config(), &mut rng);
        let median = c[0].unwrap();
        assert!(median.low > 0.2 && median.high < 0.4, "{median:?}");
        assert!(median.low <= median.point && median.point <= median.high);
        assert!(c[1].unwrap().low > 0.0, "{:?}", c[1]);
    }

    #[test]
    fn same_distribution_interval_straddles_zero_and_is_seeded() {
        let a = spread(1_000_000, 3000, 3);
        let b = spread(1_000_000, 3000, 4);
        let run = |seed| {
            let mut rng = SplitMix64::new(seed);
            quantile_changes(&a, &b, &[0.5], &config(), &mut rng)[0].unwrap()
        };
        let c = run(9);
        assert!(c.low < 0.0 && c.high > 0.0, "{c:?}");
        assert!(
            c.high - c.low < 0.1,
            "3000 samples give a narrow median interval: {c:?}"
        );
        assert_eq!(run(9), c, "same seed, same interval");
    }

    #[test]
    fn draws_are_capped() {
        let a = spread(1_000, 50_000, 5);
        let mut rng = SplitMix64::new(1);
        let cfg = BootstrapConfig {
            resamples: 10,
            max_draws: 2_000,
            ..config()
        };
        let c = quantile_changes(&a, &a, &[0.5], &cfg, &mut rng)[0].unwrap();
        assert_eq!((c.draws_a, c.draws_b), (2_000, 2_000));
        assert_eq!(c.point, 0.0);
    }

    #[test]
    fn percentiles_interpolate() {
        let s = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_of_sorted(&s, 0.5), 2.0);
        assert_eq!(percentile_of_sorted(&s, 0.125), 0.5);
        assert_eq!(percentile_of_sorted(&s, 1.0), 4.0);
    }
}
