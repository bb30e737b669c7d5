//! Bootstrap confidence intervals for the relative change of a quantile
//! between two recorded latency distributions (criterion.rs's model: the
//! statistics here know nothing of reports or verdicts).
//!
//! One resample draws N values from each side with a seeded PRNG (N = the
//! recorded count, capped for cost), takes the quantile of each, and keeps
//! B/A - 1. A side of several rounds draws its rounds first, then values
//! within them (levels.rs). The interval is the 2.5 and 97.5 percentiles of
//! those ratios; with rounds on both sides it is then widened for the few
//! rounds behind it (small_sample.rs).

use serde::Serialize;

use super::levels::Levels;
use super::sampler::{quantile_of_counts, SplitMix64};
use super::small_sample;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BootstrapConfig {
    pub resamples: usize,
    /// Upper bound on the values drawn per side and resample.
    pub max_draws: u64,
    pub confidence: f64,
    /// Widen two-level intervals for the few rounds behind them
    /// (small_sample.rs); off only to measure what that buys.
    pub small_sample: bool,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 2000,
            max_draws: 10_000,
            confidence: 0.95,
            small_sample: true,
        }
    }
}

/// The small-sample widening applied to a two-level interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Widening {
    /// Each end's distance from the bootstrap median, in log ratio, was
    /// multiplied by this.
    pub factor: f64,
    /// Welch–Satterthwaite degrees of freedom of the rounds' spread.
    pub df: f64,
    /// The percentile bootstrap's interval before widening.
    pub percentile_low: f64,
    pub percentile_high: f64,
}

/// Relative change B/A - 1 of one statistic, as a fraction (0.05 = +5 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Change {
    /// From the recorded histograms themselves.
    pub point: f64,
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
    /// Values drawn per side in each resample (with rounds: when every
    /// round is drawn once).
    pub draws_a: u64,
    pub draws_b: u64,
    pub resamples: usize,
    /// None for one level, or rounds that did not vary at all.
    pub widening: Option<Widening>,
}

/// Changes of several quantiles at once (every quantile of one resample
/// comes from the same draws, which halves the cost of asking for p50 and
/// p99). None when either side has no samples or a zero statistic.
pub fn quantile_changes(
    a: &Levels,
    b: &Levels,
    quantiles: &[f64],
    config: &BootstrapConfig,
    rng: &mut SplitMix64,
) -> Vec<Option<Change>> {
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); quantiles.len()];
    let mut counts_a = vec![0u64; a.grid().len()];
    let mut counts_b = vec![0u64; b.grid().len()];
    for _ in 0..config.resamples {
        let drawn_a = a.resample(rng, &mut counts_a);
        let drawn_b = b.resample(rng, &mut counts_b);
        for (qi, q) in quantiles.iter().enumerate() {
            let sa = quantile_of_counts(a.grid(), &counts_a, drawn_a, *q) as f64;
            let sb = quantile_of_counts(b.grid(), &counts_b, drawn_b, *q) as f64;
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
            let sa = a.merged().quantile(*q) as f64;
            if sa <= 0.0 || r.len() < config.resamples {
                return None;
            }
            r.sort_by(f64::total_cmp);
            let (low, high) = (
                percentile_of_sorted(&r, tail),
                percentile_of_sorted(&r, 1.0 - tail),
            );
            let correction = config
                .small_sample
                .then(|| {
                    small_sample::widening(
                        &a.log_round_quantiles(*q),
                        &b.log_round_quantiles(*q),
                        config.confidence,
                    )
                })
                .flatten();
            let widening = correction.map(|c| Widening {
                factor: c.factor,
                df: c.df,
                percentile_low: low,
                percentile_high: high,
            });
            let (low, high) = match correction {
                Some(c) => widen(low, high, percentile_of_sorted(&r, 0.5), c.factor),
                None => (low, high),
            };
            Some(Change {
                point: b.merged().quantile(*q) as f64 / sa - 1.0,
                low,
                high,
                confidence: config.confidence,
                draws_a: a.draws(),
                draws_b: b.draws(),
                resamples: config.resamples,
                widening,
            })
        })
        .collect()
}

/// Each end's distance from `center`, as a log ratio, times `factor`:
/// ratios are multiplicative, so a widened interval never reaches -100 %.
fn widen(low: f64, high: f64, center: f64, factor: f64) -> (f64, f64) {
    let (l, h, m) = ((1.0 + low).ln(), (1.0 + high).ln(), (1.0 + center).ln());
    (
        (m - factor * (m - l)).exp() - 1.0,
        (m + factor * (h - m)).exp() - 1.0,
    )
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
    use crate::compare::sampler::Distribution;
    use infraqual_probes::LatencyHistogram;

    /// A deterministic, noisy histogram around `center` ns.
    fn spread_hist(center: f64, n: u64, salt: u64) -> LatencyHistogram {
        let mut rng = SplitMix64::new(salt);
        let mut h = LatencyHistogram::new();
        for _ in 0..n {
            // Log-normal-ish: center * exp(0.3 * approx normal).
            let z: f64 = (0..6).map(|_| rng.next_f64()).sum::<f64>() - 3.0;
            h.record((center * (0.3 * z).exp()) as u64);
        }
        h
    }

    fn spread(center: u64, n: u64, salt: u64) -> Levels {
        let d = Distribution::of(&spread_hist(center as f64, n, salt)).unwrap();
        Levels::single(d, BootstrapConfig::default().max_draws)
    }

    /// A run of rounds around the given centers, `n` samples each: the
    /// rounds as two levels, and the same samples as one.
    fn rounds(centers: &[f64], n: u64, salt: u64) -> (Levels, Levels) {
        let hists: Vec<LatencyHistogram> = centers
            .iter()
            .enumerate()
            .map(|(i, c)| spread_hist(*c, n, salt * 100 + i as u64))
            .collect();
        let mut merged = LatencyHistogram::new();
        for h in &hists {
            merged.merge(h).unwrap();
        }
        let merged = Distribution::of(&merged).unwrap();
        let per_round = hists.iter().map(|h| Distribution::of(h).unwrap()).collect();
        let max = BootstrapConfig::default().max_draws;
        (
            Levels::of(merged.clone(), per_round, max),
            Levels::single(merged, max),
        )
    }

    fn config() -> BootstrapConfig {
        BootstrapConfig {
            resamples: 400,
            ..BootstrapConfig::default()
        }
    }

    fn median_change(a: &Levels, b: &Levels, seed: u64) -> Change {
        let mut rng = SplitMix64::new(seed);
        quantile_changes(a, b, &[0.5], &config(), &mut rng)[0].unwrap()
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
        let c = median_change(&a, &b, 9);
        assert!(c.low < 0.0 && c.high > 0.0, "{c:?}");
        assert!(
            c.high - c.low < 0.1,
            "3000 samples give a narrow median interval: {c:?}"
        );
        assert_eq!(median_change(&a, &b, 9), c, "same seed, same interval");
    }

    #[test]
    fn rounds_whose_medians_differ_widen_the_interval_by_their_spread() {
        // Round medians 0.8 .. 1.2 ms: a log-spread of 0.158 between rounds,
        // far more than the noise of a median of 2000 samples (0.3 / sqrt(2000)
        // * 1.25 = 0.008).
        let centers_a = [0.8e6, 0.9e6, 1.0e6, 1.1e6, 1.2e6];
        let centers_b = [1.2e6, 0.8e6, 1.1e6, 0.9e6, 1.0e6];
        let (a2, a1) = rounds(&centers_a, 2000, 1);
        let (b2, b1) = rounds(&centers_b, 2000, 2);
        let one = median_change(&a1, &b1, 5);
        let two = median_change(&a2, &b2, 5);
        assert_eq!((a2.rounds(), a1.rounds()), (5, 1));
        assert!(one.high - one.low < 0.05, "one level: {one:?}");
        // Known answer: the log-ratio of two pooled medians of 5 rounds has
        // a standard deviation of about sqrt(2 * 0.158^2 / 5) = 0.10 between
        // runs; the plug-in estimate takes (R-1)/R of the variance, so the
        // 95 % interval is about 2 * 1.96 * 0.10 * sqrt(0.8) = 0.36 wide. The
        // pooled median is less spread than the mean of round medians, so
        // only the order of magnitude is asserted.
        let width = two.high - two.low;
        assert!(
            (0.15..0.6).contains(&width),
            "two levels include the rounds' spread: {two:?}"
        );
        assert_eq!(one.point, two.point, "the point is the merged runs'");
        assert!(two.low < 0.0 && two.high > 0.0, "{two:?}");
    }

    #[test]
    fn a_shift_within_the_run_to_run_spread_is_significant_only_with_one_level() {
        // B's rounds are A's rounds 8 % slower: beyond 5 % noise for a run
        // seen as one set of samples, well inside the rounds' own spread.
        let centers_a = [0.8e6, 0.9e6, 1.0e6, 1.1e6, 1.2e6];
        let centers_b: Vec<f64> = [1.0e6, 1.2e6, 0.8e6, 1.1e6, 0.9e6]
            .iter()
            .map(|c| c * 1.08)
            .collect();
        let (a2, a1) = rounds(&centers_a, 2000, 3);
        let (b2, b1) = rounds(&centers_b, 2000, 4);
        let one = median_change(&a1, &b1, 6);
        let two = median_change(&a2, &b2, 6);
        assert!(one.low > 0.05, "one level calls it a regression: {one:?}");
        assert!(two.low < 0.05, "two levels see the rounds' spread: {two:?}");
    }

    #[test]
    fn identical_rounds_give_the_interval_of_one_level() {
        // Five rounds of the very same samples: nothing varies from run to
        // run, so the interval is that of their merge seen as one set.
        let h = spread_hist(1e6, 600, 11);
        let same = |hist: &LatencyHistogram, k: usize| {
            let mut merged = LatencyHistogram::new();
            for _ in 0..k {
                merged.merge(hist).unwrap();
            }
            let merged = Distribution::of(&merged).unwrap();
            let round = Distribution::of(hist).unwrap();
            let max = BootstrapConfig::default().max_draws;
            (
                Levels::of(merged.clone(), vec![round; k], max),
                Levels::single(merged, max),
            )
        };
        let (a2, a1) = same(&h, 5);
        let (b2, b1) = same(&spread_hist(1e6, 600, 12), 5);
        let one = median_change(&a1, &b1, 8);
        let two = median_change(&a2, &b2, 8);
        assert_eq!(one.point, two.point);
        assert_eq!((one.draws_a, two.draws_a), (3000, 3000));
        let tolerance = 0.2 * (one.high - one.low);
        assert!(
            (one.low - two.low).abs() < tolerance && (one.high - two.high).abs() < tolerance,
            "one level {one:?}, identical rounds {two:?}"
        );
    }

    #[test]
    fn draws_are_capped() {
        let d = Distribution::of(&spread_hist(1_000.0, 50_000, 5)).unwrap();
        let a = Levels::single(d, 2_000);
        let mut rng = SplitMix64::new(1);
        let cfg = BootstrapConfig {
            resamples: 10,
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
