//! Wall-clock stamps as results and run bundles write them: RFC 3339, UTC,
//! whole seconds (`2026-12-01T22:17:50Z`). Outside scripts parse these, so
//! every stamp comes from here.

use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// `at` in UTC. A clock set before 1970 reads as the epoch (stamps are
/// unsigned seconds since it) and one past 9999 as that year's last second.
pub fn utc(at: SystemTime) -> OffsetDateTime {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let last = Duration::from_secs(LAST_RFC3339_SECOND) + Duration::from_nanos(999_999_999);
    OffsetDateTime::UNIX_EPOCH + since_epoch.min(last)
}

/// RFC 3339, UTC, whole seconds: `started_at` and `finished_at`.
pub fn rfc3339_seconds(at: SystemTime) -> String {
    let utc = utc(at);
    let whole_second = utc - Duration::from_nanos(u64::from(utc.nanosecond()));
    whole_second
        .format(&Rfc3339)
        .expect("a UTC time in years 1970..=9999 always formats as RFC 3339")
}

pub fn now_rfc3339() -> String {
    rfc3339_seconds(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn stamps_are_utc_whole_seconds() {
        assert_eq!(rfc3339_seconds(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_seconds(at(1_795_341_600, 999_999_999)),
            "2026-11-22T10:00:00Z"
        );
        assert_eq!(
            rfc3339_seconds(at(951_868_799, 500)),
            "2000-02-29T23:59:59Z"
        );
    }

    #[test]
    fn clocks_outside_four_digit_years_are_clamped() {
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(rfc3339_seconds(before_epoch), "1970-01-01T00:00:00Z");
        let past_9999 = at(LAST_RFC3339_SECOND + 86_400, 0);
        assert_eq!(rfc3339_seconds(past_9999), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn same_text_as_the_stamps_already_written() {
        // run.json files written before this module used humantime's format.
        for secs in (0..4_102_444_800u64).step_by(7_919_993) {
            let t = at(secs, 123_456_789);
            assert_eq!(
                rfc3339_seconds(t),
                humantime::format_rfc3339_seconds(t).to_string()
            );
        }
    }
}
