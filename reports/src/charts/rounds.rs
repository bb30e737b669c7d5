//! Each round's p50 and p99 as points beside the merged distribution on a
//! metric's percentile chart: the spread from run to run that one merged
//! curve hides. A round's points sit at its percentile's position, the
//! rounds spread a little along the axis in the order they ran.

use infraqual_probes::ProbeResult;

/// log10(1 / (1 - q)) of p50 and p99 on the percentile axis.
const P50_X: f64 = std::f64::consts::LOG10_2;
const P99_X: f64 = 2.0;
/// The widest spread of one percentile's points, in axis units.
const SPREAD: f64 = 0.24;

/// The rounds of one line of a percentile chart.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundMarks {
    /// Index of the line (its colour) in the chart's histograms.
    pub line: usize,
    /// Legend text.
    pub label: String,
    /// (p50, p99) of each round, in the order they ran.
    pub rounds: Vec<(u64, u64)>,
}

impl RoundMarks {
    /// The rounds of `metric` in `result`, or None when it ran once.
    pub fn of(result: &ProbeResult, metric: &str, line: usize, label: &str) -> Option<Self> {
        let rounds: Vec<(u64, u64)> = result
            .rounds
            .iter()
            .filter_map(|r| r.metrics.get(metric))
            .filter(|m| m.count > 0)
            .map(|m| (m.p50, m.p99))
            .collect();
        (rounds.len() >= 2).then(|| RoundMarks {
            line,
            label: format!("{label}: p50, p99 of each of {} rounds", rounds.len()),
            rounds,
        })
    }

    /// (x, value) of every point: each round's p50 then its p99, at most
    /// `x_max` along the axis.
    pub fn points(&self, x_max: f64) -> Vec<(f64, f64)> {
        let n = self.rounds.len();
        let step = if n > 1 {
            (SPREAD / (n - 1) as f64).min(0.06)
        } else {
            0.0
        };
        let mut out = Vec::with_capacity(2 * n);
        for (k, (p50, p99)) in self.rounds.iter().enumerate() {
            let offset = (k as f64 - (n - 1) as f64 / 2.0) * step;
            for (x, v) in [(P50_X + offset, *p50), (P99_X + offset, *p99)] {
                if x <= x_max {
                    out.push((x, v as f64));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_spread_around_p50_and_p99_in_order() {
        let marks = RoundMarks {
            line: 0,
            label: "x".into(),
            rounds: vec![(10, 90), (20, 80), (30, 70)],
        };
        let pts = marks.points(3.0);
        assert_eq!(pts.len(), 6);
        let p50s: Vec<&(f64, f64)> = pts.iter().step_by(2).collect();
        assert!(p50s.windows(2).all(|w| w[0].0 < w[1].0), "{pts:?}");
        assert!(
            (p50s[1].0 - P50_X).abs() < 1e-9,
            "the middle round sits on p50"
        );
        assert_eq!(pts[3], (P99_X, 80.0));
        // An axis that ends before p99 (fewer than 100 samples) drops it.
        assert_eq!(marks.points(1.0).len(), 3);
    }
}

#[cfg(test)]
mod drawn {
    use infraqual_probes::LatencyHistogram;

    use super::*;
    use crate::charts::{draw, Chart, ChartKind};

    #[test]
    fn a_percentile_chart_draws_each_rounds_points_with_a_legend() {
        let mut h = LatencyHistogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let chart = Chart {
            id: "fsync-fdatasync".into(),
            title: "fsync: fdatasync latency by percentile".into(),
            probe: "fsync".into(),
            kind: ChartKind::Percentiles {
                lines: vec![crate::charts::Line {
                    label: "local".into(),
                    points: crate::charts::percentiles::percentile_points(&h),
                }],
                references: Vec::new(),
                rounds: vec![RoundMarks {
                    line: 0,
                    label: "local: p50, p99 of each of 3 rounds".into(),
                    rounds: vec![(400_000, 980_000), (500_000, 990_000), (600_000, 995_000)],
                }],
            },
        };
        let svg = draw::svg(&chart).unwrap();
        assert!(svg.contains("p50, p99 of each of 3 rounds"), "legend");
        // Six round points and the legend's one, beside the line's dots.
        assert!(
            svg.matches("<circle").count() >= 7,
            "{}",
            svg.matches("<circle").count()
        );
        assert!(draw::png(&chart).is_ok());
    }
}
