//! The overlay's cost under matched conditions: for each target node and
//! kind measured on both paths, the difference overlay − native of the
//! block medians of the same rounds (see `interleave`), with a 95 % interval
//! from a paired bootstrap over those blocks. Load that changes during the
//! run moves both paths of a block alike and cancels in the difference, so
//! the sign of the overhead does not flip with the weather.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::key::{pair_key, RttMetricKey};
use super::Kind;
use crate::context::ProbeContext;
use crate::random::{stream_seed, SplitMix64};
use crate::result::ProbeResult;

/// Matched blocks below which no interval is given.
pub const MIN_BLOCKS: usize = 5;
const RESAMPLES: usize = 2000;
const SEED: u64 = 0x0ee7_1a75;
/// Profile check judged from the largest matched overhead, where the
/// profile has one (in µs).
pub const CHECK: &str = "rtt.overlay.overhead_us";

/// One path pair's matched difference, in ns.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchedOverhead {
    pub blocks: usize,
    pub diff_ns: f64,
    pub ci95_ns: (f64, f64),
    pub native_ns: f64,
}

impl MatchedOverhead {
    /// Median of the per-block differences and its paired-bootstrap
    /// interval; None with fewer than MIN_BLOCKS matched blocks.
    pub fn of(native: &[Option<u64>], overlay: &[Option<u64>], seed: u64) -> Option<Self> {
        let pairs: Vec<(f64, f64)> = native
            .iter()
            .zip(overlay)
            .filter_map(|(n, o)| Some((n.as_ref().copied()? as f64, o.as_ref().copied()? as f64)))
            .collect();
        if pairs.len() < MIN_BLOCKS {
            return None;
        }
        let diffs: Vec<f64> = pairs.iter().map(|(n, o)| o - n).collect();
        let mut rng = SplitMix64::new(seed);
        let mut draw = vec![0.0; diffs.len()];
        let mut medians: Vec<f64> = (0..RESAMPLES)
            .map(|_| {
                for d in draw.iter_mut() {
                    *d = diffs[rng.below(diffs.len())];
                }
                median(&mut draw)
            })
            .collect();
        medians.sort_by(f64::total_cmp);
        let at = |q: f64| medians[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
        Some(MatchedOverhead {
            blocks: pairs.len(),
            diff_ns: median(&mut diffs.clone()),
            ci95_ns: (at(0.025), at(0.975)),
            native_ns: median(&mut pairs.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
        })
    }

    /// Whether the interval excludes zero.
    pub fn measurable(&self) -> bool {
        self.ci95_ns.0 > 0.0 || self.ci95_ns.1 < 0.0
    }

    pub fn pct(&self) -> f64 {
        if self.native_ns > 0.0 {
            self.diff_ns * 100.0 / self.native_ns
        } else {
            0.0
        }
    }

    /// "overlay costs +4.1 µs [+3.2, +5.0] (+17.0 %)", or "no measurable
    /// overhead" when the interval spans zero.
    pub fn sentence(&self) -> String {
        let us = |ns: f64| ns / 1000.0;
        let interval = format!(
            "{:+.1} µs [{:+.1}, {:+.1}]",
            us(self.diff_ns),
            us(self.ci95_ns.0),
            us(self.ci95_ns.1)
        );
        if !self.measurable() {
            format!("no measurable overhead ({interval}, {} matched blocks)", self.blocks)
        } else if self.diff_ns > 0.0 {
            format!("overlay costs {interval} ({:+.1} %)", self.pct())
        } else {
            format!("overlay measured faster than native: {interval} ({:+.1} %)", self.pct())
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Block medians of one target and kind, by path.
type PathBlocks<'a> = BTreeMap<&'a str, &'a [Option<u64>]>;

/// `overlay_overhead_matched["<src>-><dst>"]["<kind>"]`: the matched
/// overhead per pair and kind, plus a verdict where the profile has
/// `rtt.overlay.overhead_us` and a warning when overlay reads faster.
pub(crate) fn overlay_overhead(
    result: &mut ProbeResult,
    blocks: &[(RttMetricKey, Vec<Option<u64>>)],
    ctx: &ProbeContext,
) {
    let mut by_pair: BTreeMap<(String, Kind), PathBlocks<'_>> = BTreeMap::new();
    for (key, medians) in blocks {
        by_pair
            .entry((key.target.clone(), key.kind))
            .or_default()
            .insert(key.path.as_str(), medians);
    }
    let mut facts: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut worst: Option<(String, MatchedOverhead)> = None;
    for ((target, kind), paths) in &by_pair {
        let (Some(native), Some(overlay)) = (paths.get("native"), paths.get("overlay")) else {
            continue;
        };
        let pair = pair_key(&ctx.node, target);
        let seed = stream_seed(SEED, &format!("{pair}/{}", kind.as_str()));
        let Some(m) = MatchedOverhead::of(native, overlay, seed) else {
            continue;
        };
        if m.measurable() && m.diff_ns < 0.0 {
            result.warn(format!(
                "{pair}/{}: {}; a faster overlay usually means the native path is not the \
                 plain underlay it should be",
                kind.as_str(),
                m.sentence()
            ));
        }
        facts.entry(pair.clone()).or_default().insert(
            kind.as_str().into(),
            json!({
                "blocks": m.blocks,
                "diff_us": round3(m.diff_ns / 1000.0),
                "ci95_us": [round3(m.ci95_ns.0 / 1000.0), round3(m.ci95_ns.1 / 1000.0)],
                "pct": round3(m.pct()),
                "native_us": round3(m.native_ns / 1000.0),
                "measurable": m.measurable(),
                "summary": m.sentence(),
            }),
        );
        if worst.as_ref().is_none_or(|(_, w)| m.diff_ns > w.diff_ns) {
            worst = Some((format!("{pair}/{}", kind.as_str()), m));
        }
    }
    if facts.is_empty() {
        return;
    }
    result.fact(
        "overlay_overhead_matched",
        Value::Object(facts.into_iter().map(|(k, v)| (k, Value::Object(v))).collect()),
    );
    if let (Some((key, m)), true) = (worst, ctx.profile.checks.contains_key(CHECK)) {
        let mut v = ctx.profile.judge(CHECK, m.diff_ns / 1000.0);
        v.note = format!("{} (worst: {key}: {})", v.note, m.sentence())
            .trim()
            .to_string();
        result.verdicts.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(values: impl IntoIterator<Item = u64>) -> Vec<Option<u64>> {
        values.into_iter().map(Some).collect()
    }

    #[test]
    fn a_constant_cost_under_drifting_load_is_found_with_a_tight_interval() {
        // Load drifts from 20 to 80 µs over the run; the overlay always
        // costs 4 µs more in the same block. Unmatched p50s would mix the
        // drift into the difference; matched blocks cancel it.
        let native = blocks((0..40).map(|b| 20_000 + b * 1_500));
        let overlay = blocks((0..40).map(|b| 24_000 + b * 1_500 + (b % 3) * 100));
        let m = MatchedOverhead::of(&native, &overlay, 1).unwrap();
        assert_eq!(m.blocks, 40);
        assert!((m.diff_ns - 4_100.0).abs() <= 100.0, "{m:?}");
        assert!(m.ci95_ns.0 >= 4_000.0 && m.ci95_ns.1 <= 4_200.0, "{m:?}");
        assert!(m.measurable());
        assert!(m.sentence().starts_with("overlay costs +4.1 µs"), "{}", m.sentence());
    }

    #[test]
    fn equal_paths_have_no_measurable_overhead() {
        let native = blocks((0..30).map(|b| 20_000 + (b * 7919) % 1000));
        let overlay = blocks((0..30).map(|b| 20_000 + (b * 104_729) % 1000));
        let m = MatchedOverhead::of(&native, &overlay, 2).unwrap();
        assert!(!m.measurable(), "{m:?}");
        assert!(m.sentence().starts_with("no measurable overhead"), "{}", m.sentence());
    }

    #[test]
    fn unmatched_blocks_are_left_out_and_few_blocks_give_nothing() {
        let mut native = blocks([10_000; 8]);
        native[2] = None;
        let overlay = blocks([12_000; 8]);
        assert_eq!(MatchedOverhead::of(&native, &overlay, 3).unwrap().blocks, 7);
        assert!(MatchedOverhead::of(&native[..4], &overlay[..4], 3).is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let native = blocks((0..20).map(|b| 20_000 + (b * 37) % 900));
        let overlay = blocks((0..20).map(|b| 23_000 + (b * 53) % 900));
        assert_eq!(
            MatchedOverhead::of(&native, &overlay, 9),
            MatchedOverhead::of(&native, &overlay, 9)
        );
    }
}
