//! What one bootstrap resample of a side draws from. A run measured once
//! has one level: the samples of its histogram. A run of several rounds has
//! two: first the rounds, drawn with replacement, then samples within each
//! drawn round. The second level alone sees only the noise inside one run;
//! the first puts the variation from run to run (a disk that was busier
//! during one round, a stall that landed in one round and not another) into
//! every resample, which is what a comparison of two runs has to beat.
//!
//! Drawing R rounds out of R estimates the rounds' spread with the
//! plug-in variance, (R-1)/R of the unbiased one (0.8 at 5 rounds), and a
//! spread estimated from R values calls for Student's t: small_sample.rs
//! widens the interval for both.

use super::sampler::{Distribution, SplitMix64};

/// One unit of the first level: a round (or the whole run), the bucket
/// index in the side's value grid of each of its buckets, and how many
/// values a resample draws from it.
#[derive(Clone, Debug)]
struct Unit {
    distribution: Distribution,
    grid_index: Vec<usize>,
    draws: u64,
}

#[derive(Clone, Debug)]
pub struct Levels {
    /// Every bucket value of every unit, ascending and distinct: the
    /// pooled resample's counts are kept against it.
    grid: Vec<u64>,
    units: Vec<Unit>,
    /// The recorded histogram of the whole run: the point estimate.
    merged: Distribution,
}

impl Levels {
    /// One level: resamples draw from the whole run's histogram, at most
    /// `max_draws` values each.
    pub fn single(merged: Distribution, max_draws: u64) -> Self {
        Levels::of(merged, Vec::new(), max_draws)
    }

    /// Two levels when `rounds` holds at least two non-empty rounds, one
    /// otherwise. Each resample draws about as many values as the rounds
    /// hold, scaled down to at most `max_draws` in all.
    pub fn of(merged: Distribution, rounds: Vec<Distribution>, max_draws: u64) -> Self {
        let units: Vec<Distribution> = if rounds.len() >= 2 {
            rounds
        } else {
            vec![merged.clone()]
        };
        let total: u64 = units.iter().map(|u| u.total).sum();
        let scale = (max_draws as f64 / total.max(1) as f64).min(1.0);
        let mut grid: Vec<u64> = units.iter().flat_map(|u| u.values.clone()).collect();
        grid.sort_unstable();
        grid.dedup();
        let units = units
            .into_iter()
            .map(|distribution| {
                let grid_index = distribution
                    .values
                    .iter()
                    .map(|v| grid.partition_point(|g| g < v))
                    .collect();
                let draws = ((distribution.total as f64 * scale).round() as u64).max(1);
                Unit {
                    distribution,
                    grid_index,
                    draws,
                }
            })
            .collect();
        Levels {
            grid,
            units,
            merged,
        }
    }

    /// 1 for a run resampled as one; the number of rounds otherwise.
    pub fn rounds(&self) -> usize {
        self.units.len()
    }

    pub fn grid(&self) -> &[u64] {
        &self.grid
    }

    /// The natural log of each round's own quantile `q`; empty for a run
    /// resampled as one (or a round whose quantile is zero).
    pub fn log_round_quantiles(&self, q: f64) -> Vec<f64> {
        if self.units.len() < 2 {
            return Vec::new();
        }
        self.units
            .iter()
            .map(|u| u.distribution.quantile(q) as f64)
            .filter(|v| *v > 0.0)
            .map(f64::ln)
            .collect()
    }

    pub fn merged(&self) -> &Distribution {
        &self.merged
    }

    /// Values one resample draws when every unit is drawn once.
    pub fn draws(&self) -> u64 {
        self.units.iter().map(|u| u.draws).sum()
    }

    /// One resample's counts against [`Levels::grid`]; returns how many
    /// values it drew (rounds differ in size, so it varies between
    /// resamples of a side with rounds).
    pub fn resample(&self, rng: &mut SplitMix64, counts: &mut [u64]) -> u64 {
        counts.iter_mut().for_each(|c| *c = 0);
        if let [only] = self.units.as_slice() {
            draw_within(only, rng, counts);
            return only.draws;
        }
        let mut drawn = 0;
        for _ in 0..self.units.len() {
            let unit = &self.units[rng.below(self.units.len())];
            draw_within(unit, rng, counts);
            drawn += unit.draws;
        }
        drawn
    }
}

fn draw_within(unit: &Unit, rng: &mut SplitMix64, counts: &mut [u64]) {
    for _ in 0..unit.draws {
        counts[unit.grid_index[unit.distribution.draw(rng)]] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraqual_probes::LatencyHistogram;

    fn dist(values: &[(u64, u64)]) -> Distribution {
        let mut h = LatencyHistogram::new();
        for &(v, n) in values {
            for _ in 0..n {
                h.record(v);
            }
        }
        Distribution::of(&h).unwrap()
    }

    #[test]
    fn one_round_is_one_level() {
        let d = dist(&[(1_000, 10), (2_000, 10)]);
        let l = Levels::of(d.clone(), vec![d.clone()], 100);
        assert_eq!(l.rounds(), 1);
        assert_eq!(l.grid(), d.values.as_slice());
    }

    #[test]
    fn rounds_share_one_grid_and_draws_scale_to_the_cap() {
        let r1 = dist(&[(1_000, 300)]);
        let r2 = dist(&[(2_000, 100)]);
        let merged = dist(&[(1_000, 300), (2_000, 100)]);
        let l = Levels::of(merged, vec![r1, r2], 200);
        assert_eq!(l.rounds(), 2);
        assert_eq!(l.grid().len(), 2);
        assert_eq!(l.draws(), 200, "150 + 50: each round keeps its share");
        let mut rng = SplitMix64::new(3);
        let mut counts = vec![0; 2];
        let mut seen_only_one = false;
        for _ in 0..50 {
            let drawn = l.resample(&mut rng, &mut counts);
            assert_eq!(counts.iter().sum::<u64>(), drawn);
            // Both draws of the first level picked the same round.
            seen_only_one |= counts.contains(&0);
        }
        assert!(seen_only_one, "rounds are drawn with replacement");
    }
}
