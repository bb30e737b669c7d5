//! Latency histograms: recorded in nanoseconds, shipped as base64 V2 (deflate)
//! serialization, merged by adding counts, read as percentiles only at the end.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::error::ResultError;

/// Lowest recordable value: 1 ns.
pub const LOWEST_NS: u64 = 1;
/// Highest recordable value: one hour, in nanoseconds.
pub const HIGHEST_NS: u64 = 3_600_000_000_000;
/// Three significant digits: 0.1 % value resolution at every magnitude.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// An HdrHistogram of nanosecond latencies with the project's fixed bounds.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let inner = Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { inner }
    }

    /// Records one latency; values outside 1 ns .. 1 h are clamped so that an
    /// outlier is counted rather than silently dropped.
    pub fn record(&mut self, ns: u64) {
        self.inner
            .saturating_record(ns.clamp(LOWEST_NS, HIGHEST_NS));
    }

    /// Records one latency from a paced sender, back-filling the samples a
    /// stalled sender would have taken (coordinated-omission correction).
    pub fn record_paced(&mut self, ns: u64, expected_interval_ns: u64) {
        let ns = ns.clamp(LOWEST_NS, HIGHEST_NS);
        if self.inner.record_correct(ns, expected_interval_ns).is_err() {
            self.inner.saturating_record(ns);
        }
    }

    /// Adds every count of `other` into this histogram (exact merge).
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), ResultError> {
        self.inner
            .add(&other.inner)
            .map_err(|e| ResultError::Merge(format!("{e:?}")))
    }

    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The value at `quantile` (0.0 ..= 1.0), or 0 for an empty histogram.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        if self.inner.is_empty() {
            0
        } else {
            self.inner.value_at_quantile(quantile)
        }
    }

    pub fn min(&self) -> u64 {
        if self.inner.is_empty() {
            0
        } else {
            self.inner.min()
        }
    }

    pub fn max(&self) -> u64 {
        if self.inner.is_empty() {
            0
        } else {
            self.inner.max()
        }
    }

    pub fn mean(&self) -> f64 {
        if self.inner.is_empty() {
            0.0
        } else {
            self.inner.mean()
        }
    }

    /// The underlying histogram, for iteration (plots, resampling).
    pub fn inner(&self) -> &Histogram<u64> {
        &self.inner
    }

    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// V2 deflate serialization, base64 (standard alphabet): the wire and
    /// bundle form ("HISTFAAA...").
    pub fn to_base64(&self) -> Result<String, ResultError> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.inner, &mut bytes)
            .map_err(|e| ResultError::Encode(format!("{e:?}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn from_base64(text: &str) -> Result<Self, ResultError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| ResultError::Decode(format!("base64: {e}")))?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| ResultError::Decode(format!("{e:?}")))?;
        // Re-home into the project's bounds so merges never fail on range.
        let mut hist = Self::new();
        hist.inner
            .add(&decoded)
            .map_err(|e| ResultError::Decode(format!("{e:?}")))?;
        Ok(hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn base64_round_trip_keeps_every_count() {
        let h = sample(&[90_000, 150_000, 150_000, 260_000, 2_500_000]);
        let text = h.to_base64().unwrap();
        assert!(
            text.starts_with("HISTFAAA"),
            "V2 deflate cookie, got {text}"
        );
        let back = LatencyHistogram::from_base64(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }

    #[test]
    fn merge_is_exact_addition() {
        let a = sample(&(1..=1000).map(|v| v * 1000).collect::<Vec<_>>());
        let b = sample(&(1001..=2000).map(|v| v * 1000).collect::<Vec<_>>());
        let all = sample(&(1..=2000).map(|v| v * 1000).collect::<Vec<_>>());
        let mut merged = a.clone();
        merged.merge(&b).unwrap();
        assert_eq!(merged, all);
        assert_eq!(merged.len(), 2000);
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let h = sample(&[0, HIGHEST_NS * 2]);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), LOWEST_NS);
        assert!(h.max() >= HIGHEST_NS);
    }

    #[test]
    fn empty_histogram_reads_as_zero() {
        let h = LatencyHistogram::new();
        assert_eq!((h.min(), h.max(), h.value_at_quantile(0.99)), (0, 0, 0));
        assert_eq!(h.mean(), 0.0);
    }

    #[test]
    fn corrupt_text_is_an_error() {
        assert!(LatencyHistogram::from_base64("not base64 !!").is_err());
        assert!(LatencyHistogram::from_base64("SElTVA==").is_err());
    }
}
