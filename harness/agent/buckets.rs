//! Prometheus histogram buckets per probe, in nanoseconds so that every `le`
//! is written exactly. Each probe's range decides its buckets: fsync uses
//! etcd's own `wal_fsync_duration_seconds` buckets (1 ms .. 8 s, doubling)
//! with three sub-millisecond steps below them for fast disks; rtt and mtu
//! double from 5 µs; hiccups and everything else double from 1 µs.

use infraqual_probes::ProbeName;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn doubling(first_ns: u64, steps: u32) -> Vec<u64> {
    (0..steps).map(|i| first_ns << i).collect()
}

/// Upper bounds (`le`) in nanoseconds, ascending; `+Inf` is implied.
pub fn latency_bounds_ns(probe: ProbeName) -> Vec<u64> {
    if probe == infraqual_probes::fsync::NAME {
        let mut bounds = vec![100 * US, 250 * US, 500 * US];
        bounds.extend(doubling(MS, 14));
        bounds
    } else if probe == infraqual_probes::rtt::NAME || probe == infraqual_probes::mtu::NAME {
        doubling(5 * US, 19)
    } else {
        doubling(US, 25)
    }
}

/// `le` label text: seconds as an exact decimal, no float rounding.
pub fn seconds_text(ns: u64) -> String {
    let whole = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_buckets_are_etcds_above_a_millisecond() {
        let b = latency_bounds_ns(infraqual_probes::fsync::NAME);
        let text: Vec<String> = b.iter().map(|&ns| seconds_text(ns)).collect();
        assert_eq!(&text[..4], ["0.0001", "0.00025", "0.0005", "0.001"]);
        assert_eq!(text.last().map(String::as_str), Some("8.192"));
    }

    #[test]
    fn every_probe_has_ascending_bounds() {
        for probe in infraqual_probes::registry::names_in_order() {
            let b = latency_bounds_ns(probe);
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{probe}");
        }
    }

    #[test]
    fn seconds_text_is_exact() {
        assert_eq!(seconds_text(5_000), "0.000005");
        assert_eq!(seconds_text(1_310_720_000), "1.31072");
        assert_eq!(seconds_text(2_000_000_000), "2");
    }
}
