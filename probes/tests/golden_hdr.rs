//! Golden HdrHistograms from another implementation (the Python
//! `hdrhistogram` package, fixtures/hdr-golden/generate.py): infraqual's
//! decoder must read each with exactly the count, min, max and percentiles
//! that package reads, so a script that writes or reads the `hdr` field with
//! a standard HdrHistogram library gets the numbers infraqual does.

use std::path::{Path, PathBuf};

use infraqual_probes::{LatencyHistogram, MetricSummary};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hdr-golden")
}

fn expected() -> Value {
    let path = golden_dir().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn decode(name: &str) -> LatencyHistogram {
    let path = golden_dir().join(format!("{name}.hdr"));
    let text = std::fs::read_to_string(&path).unwrap();
    LatencyHistogram::from_base64(&text)
        .unwrap_or_else(|e| panic!("{}: infraqual cannot decode it: {e}", path.display()))
}

/// `<highest equivalent value> <count>` per recorded bucket, as written by
/// the other implementation.
fn buckets_file(name: &str) -> Vec<(u64, u64)> {
    let path = golden_dir().join(format!("{name}.buckets"));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let (value, count) = line.split_once(' ').unwrap();
            (value.parse().unwrap(), count.parse().unwrap())
        })
        .collect()
}

fn buckets_of(hist: &LatencyHistogram) -> Vec<(u64, u64)> {
    hist.inner()
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// The value of the `rank`-th smallest sample (1-based).
fn value_at_rank(buckets: &[(u64, u64)], rank: u64) -> u64 {
    let mut seen = 0;
    for &(value, count) in buckets {
        seen += count;
        if seen >= rank {
            return value;
        }
    }
    panic!("rank {rank} beyond {seen} samples")
}

/// The decoded histogram holds the other implementation's buckets exactly,
/// and its summary (what a result's metric carries) reads as that
/// implementation reads it. The one difference is the rank rule of a
/// percentile: the summary takes the ceil(q x count)-th sample, the Python
/// package rounds q x count to the nearest rank; where the two ranks differ
/// each must still be its own rule's sample.
fn assert_reads_as(name: &str, hist: &LatencyHistogram, want: &Value) {
    let buckets = buckets_file(name);
    assert_eq!(buckets_of(hist), buckets, "{name}: buckets");
    let summary = MetricSummary::from_histogram(hist, "ns").unwrap();
    let scalars = [
        ("count", summary.count),
        ("min", summary.min),
        ("max", summary.max),
    ];
    for (what, got) in scalars {
        assert_eq!(Some(got), want[what].as_u64(), "{name}: {what}");
    }
    let n = summary.count;
    let percentiles = [
        ("50.0", 0.50, summary.p50),
        ("90.0", 0.90, summary.p90),
        ("99.0", 0.99, summary.p99),
        ("99.9", 0.999, summary.p999),
        ("100.0", 1.0, hist.value_at_quantile(1.0)),
    ];
    for (percentile, quantile, got) in percentiles {
        let theirs = want["percentiles"][percentile].as_u64().unwrap();
        let p: f64 = percentile.parse().unwrap();
        let their_rank = ((p * n as f64 / 100.0 + 0.5) as u64).max(1);
        let our_rank = ((quantile * n as f64).ceil() as u64).max(1);
        assert_eq!(
            theirs,
            value_at_rank(&buckets, their_rank),
            "{name}: p{percentile}"
        );
        assert_eq!(
            got,
            value_at_rank(&buckets, our_rank),
            "{name}: p{percentile}"
        );
        if their_rank == our_rank {
            assert_eq!(got, theirs, "{name}: p{percentile}");
        }
    }
    // Both take the mean over bucket midpoints; only float summation order
    // may differ.
    let mean = want["mean"].as_f64().unwrap();
    assert!(
        (hist.mean() - mean).abs() <= mean * 1e-12,
        "{name}: mean {} against {mean}",
        hist.mean()
    );
}

#[test]
fn histograms_written_by_python_hdrhistogram_decode_exactly() {
    let expected = expected();
    let cases = expected["histograms"].as_object().unwrap();
    assert_eq!(cases.len(), 4, "every generated case is checked");
    for (name, want) in cases {
        assert_reads_as(name, &decode(name), want);
    }
}

#[test]
fn python_hdrhistogram_reads_infraqual_encoding_as_infraqual_does() {
    let want = &expected()["rust_encoded"];
    let decoded = decode("rust-encoded");
    // The committed file is still exactly the recipe's histogram ...
    let mut recipe = LatencyHistogram::new();
    for us in 1..=1000 {
        recipe.record(us * 1000);
    }
    for _ in 0..3 {
        recipe.record(5_000_000);
    }
    assert_eq!(decoded, recipe);
    // ... and Python's reading of it (recorded by generate.py) is infraqual's.
    assert_reads_as("rust-encoded", &decoded, want);
    let re_encoded = LatencyHistogram::from_base64(&recipe.to_base64().unwrap()).unwrap();
    assert_reads_as("rust-encoded", &re_encoded, want);
}

#[test]
fn a_damaged_golden_file_is_an_error_not_a_histogram() {
    let text = std::fs::read_to_string(golden_dir().join("fsync-like.hdr")).unwrap();
    let cut = &text.trim()[..text.trim().len() / 2];
    assert!(LatencyHistogram::from_base64(cut).is_err());
}
