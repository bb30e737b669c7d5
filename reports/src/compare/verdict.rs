//! The verdict on one change, criterion.rs's rule: only the confidence
//! interval decides, never the point estimate. Both ends beyond +noise is a
//! regression (for a lower-is-better quantity), both beyond -noise an
//! improvement, anything else no significant change.

use std::fmt;

use serde::Serialize;

use super::bootstrap::Change;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeVerdict {
    Improved,
    NoChange,
    Regressed,
    /// A scalar without a distribution: the change is reported, not judged.
    NotJudged,
}

impl ChangeVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeVerdict::Improved => "improved",
            ChangeVerdict::NoChange => "no change",
            ChangeVerdict::Regressed => "regressed",
            ChangeVerdict::NotJudged => "not judged",
        }
    }
}

impl fmt::Display for ChangeVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use infraqual_probes::probe::Better;

/// `noise` is a fraction (0.05 for 5 %).
pub fn judge(change: &Change, noise: f64, better: Better) -> ChangeVerdict {
    let up = change.low > noise;
    let down = change.high < -noise;
    match (up, down, better) {
        (true, _, Better::Lower) | (_, true, Better::Higher) => ChangeVerdict::Regressed,
        (_, true, Better::Lower) | (true, _, Better::Higher) => ChangeVerdict::Improved,
        _ => ChangeVerdict::NoChange,
    }
}

/// `5%`, `5 %`, `0.05` or `5` (as percent) to a fraction; negative,
/// non-numeric and 100 % or more are refused.
pub fn parse_noise(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage like 5%"))?;
    let fraction = if percent || v >= 1.0 { v / 100.0 } else { v };
    if !fraction.is_finite() || !(0.0..1.0).contains(&fraction) {
        return Err(format!("{text:?} must be between 0% and 100%"));
    }
    Ok(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(low: f64, high: f64) -> Change {
        Change {
            point: (low + high) / 2.0,
            low,
            high,
            confidence: 0.95,
            draws_a: 1,
            draws_b: 1,
            resamples: 1,
            widening: None,
        }
    }

    #[test]
    fn interval_decides_against_noise() {
        let n = 0.05;
        assert_eq!(
            judge(&change(0.06, 0.2), n, Better::Lower),
            ChangeVerdict::Regressed
        );
        assert_eq!(
            judge(&change(-0.3, -0.1), n, Better::Lower),
            ChangeVerdict::Improved
        );
        // A big point estimate with an interval reaching into the noise.
        assert_eq!(
            judge(&change(0.01, 0.5), n, Better::Lower),
            ChangeVerdict::NoChange
        );
        assert_eq!(
            judge(&change(-0.04, 0.04), n, Better::Lower),
            ChangeVerdict::NoChange
        );
        assert_eq!(
            judge(&change(0.06, 0.2), n, Better::Higher),
            ChangeVerdict::Improved
        );
    }

    #[test]
    fn noise_parses_percent_and_fraction() {
        assert_eq!(parse_noise("5%"), Ok(0.05));
        assert_eq!(parse_noise(" 2.5 % "), Ok(0.025));
        assert_eq!(parse_noise("0.1"), Ok(0.1));
        assert_eq!(parse_noise("10"), Ok(0.1));
        assert!(parse_noise("-5%").is_err());
        assert!(parse_noise("lots").is_err());
        assert!(parse_noise("150%").is_err());
    }
}
