//! The small-sample correction of a two-level interval. With R rounds a
//! side, the percentile bootstrap is too narrow twice over: drawing R
//! rounds out of R sees the plug-in variance of the rounds, (R-1)/R of the
//! unbiased one, and its percentiles are those of a normal law where the
//! spread itself was estimated from R values, which calls for Student's t.
//! The correction widens the bootstrap interval (in log-ratio space, about
//! the bootstrap's own median) by
//!
//!   k = t(df, 1-α/2) / z(1-α/2) · sqrt((va + vb) / (va·(Ra-1)/Ra + vb·(Rb-1)/Rb))
//!
//! where va = s²a/Ra is the variance of side A's estimate from the spread
//! s²a of its rounds' own log-quantiles (unbiased), and df is
//! Welch–Satterthwaite's from va and vb. The coverage this buys is measured
//! on synthetic two-level data in tests.rs (`coverage_*`).

/// How much a two-level interval is widened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    /// Multiplies each end's distance from the bootstrap median (log space).
    pub factor: f64,
    /// Welch–Satterthwaite degrees of freedom of the rounds' spread.
    pub df: f64,
}

/// None when either side has fewer than two rounds (one level: nothing to
/// correct) or the rounds do not vary at all (no spread to estimate).
pub fn widening(log_rounds_a: &[f64], log_rounds_b: &[f64], confidence: f64) -> Option<Correction> {
    let (ra, rb) = (log_rounds_a.len() as f64, log_rounds_b.len() as f64);
    if ra < 2.0 || rb < 2.0 {
        return None;
    }
    let va = unbiased_variance(log_rounds_a) / ra;
    let vb = unbiased_variance(log_rounds_b) / rb;
    let total = va + vb;
    // Equal rounds leave rounding dust of about 1e-32, not a spread.
    if total <= 1e-18 || !total.is_finite() {
        return None;
    }
    let df = total * total / (va * va / (ra - 1.0) + vb * vb / (rb - 1.0));
    let plug_in = va * (ra - 1.0) / ra + vb * (rb - 1.0) / rb;
    let upper = 1.0 - (1.0 - confidence) / 2.0;
    let factor = student_t_quantile(upper, df) / normal_quantile(upper) * (total / plug_in).sqrt();
    Some(Correction { factor, df })
}

fn unbiased_variance(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

/// The p-quantile (p > 0.5) of Student's t with `df` (real, > 0) degrees
/// of freedom, by bisection on its distribution function.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// P(T <= t) for t >= 0: 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t²).
fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    1.0 - 0.5 * regularized_beta(x, df / 2.0, 0.5)
}

/// The standard normal's p-quantile (p > 0.5), as t with infinite df.
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 10.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        let cdf = 0.5 * (1.0 + erf(mid / std::f64::consts::SQRT_2));
        if cdf < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Abramowitz–Stegun 7.1.26 is not precise enough for a quantile to four
/// digits; this is the series / continued fraction through the incomplete
/// gamma function, erf(x) = P(1/2, x²).
fn erf(x: f64) -> f64 {
    regularized_gamma_p(0.5, x * x)
}

fn regularized_gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut term = 1.0 / a;
    let mut sum = term;
    for n in 1..1000 {
        term *= x / (a + n as f64);
        sum += term;
        if term.abs() < sum.abs() * 1e-16 {
            break;
        }
    }
    sum * (-x + a * x.ln() - ln_gamma(a)).exp()
}

/// I_x(a, b) by Lentz's continued fraction (Numerical Recipes' betacf).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for numerator in [
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Lanczos (g = 7, n = 9), good to about 15 digits for x > 0.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_the_tables() {
        // Student's t tables, 97.5 % point.
        for (df, t) in [(1.0, 12.706), (4.0, 2.776), (8.0, 2.306), (30.0, 2.042)] {
            let q = student_t_quantile(0.975, df);
            assert!((q - t).abs() < 1e-3, "df {df}: {q} vs {t}");
        }
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((student_t_quantile(0.975, 1e6) - 1.959_964).abs() < 1e-3);
    }

    #[test]
    fn five_equal_spreads_a_side_widen_by_t8_and_the_plug_in_variance() {
        let a = [0.0, 0.1, 0.2, 0.3, 0.4];
        let b = [1.0, 1.1, 1.2, 1.3, 1.4];
        let w = widening(&a, &b, 0.95).unwrap();
        assert_eq!(widening(&b, &a, 0.95).unwrap().factor, w.factor);
        assert!((w.df - 8.0).abs() < 1e-9, "{w:?}");
        let expected = 2.306 / 1.96 * (5.0f64 / 4.0).sqrt();
        assert!((w.factor - expected).abs() < 1e-3, "{w:?} vs {expected}");
    }

    #[test]
    fn one_round_or_no_spread_is_not_widened() {
        assert_eq!(widening(&[0.0], &[0.0, 1.0], 0.95), None);
        assert_eq!(widening(&[0.5; 5], &[0.5; 5], 0.95), None);
    }
}
