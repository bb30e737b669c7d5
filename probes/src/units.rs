//! Human durations (`30s`, `1m30s`, `250ms`), sizes (`22MiB`, `4k`, `2300`)
//! and wall-clock times (`2026-12-02T09:00:00.5Z`) for flags, plan files and
//! probe parameters.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the human way; serializes back to its text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty duration (expected e.g. 30s, 500ms, 2m)".into());
        }
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration `{text}`: {e} (expected e.g. 30s, 500ms, 2m)"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A wall-clock time in RFC 3339, UTC (`2026-12-02T09:00:00.5Z`), to the
/// nanosecond; serializes back to that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WallTime(pub SystemTime);

impl WallTime {
    /// The monotonic instant of this time, as far from now as it is (now,
    /// if it lies further back than the monotonic clock reaches).
    pub fn instant(&self) -> Instant {
        let now = Instant::now();
        match self.0.duration_since(SystemTime::now()) {
            Ok(ahead) => now + ahead,
            Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
        }
    }
}

impl FromStr for WallTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        humantime::parse_rfc3339_weak(text)
            .map(WallTime)
            .map_err(|e| {
                format!("invalid time `{text}`: {e} (expected RFC 3339 in UTC, e.g. 2026-12-02T09:00:00.5Z)")
            })
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_nanos(self.0))
    }
}

/// Serde through the text form users write in flags and plans: `Display`
/// out, a string parsed by `FromStr` in.
macro_rules! serde_as_text {
    ($($t:ty),+) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

serde_as_text!(HumanDuration, WallTime);

/// A byte count written the human way: binary (KiB, MiB, GiB) and decimal
/// (k/kB, M/MB, G/GB) suffixes; a bare number is bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let bad = || format!("invalid size `{text}` (expected e.g. 2300, 4KiB, 22MiB, 1GB)");
        if number.is_empty() {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let multiplier: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "kib" | "ki" => 1 << 10,
            "mib" | "mi" => 1 << 20,
            "gib" | "gi" => 1 << 30,
            _ => return Err(bad()),
        };
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
            return Err(bad());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        // Binary units first; decimal ones for sizes written that way
        // (etcd's 64,000,000-byte segment is 64MB, not 62500KiB).
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20)] {
            if b >= size && b % size == 0 {
                return write!(f, "{}{unit}", b / size);
            }
        }
        for (unit, size) in [("GB", 1_000_000_000u64), ("MB", 1_000_000)] {
            if b >= size && b % size == 0 {
                return write!(f, "{}{unit}", b / size);
            }
        }
        if b >= 1 << 10 && b % (1 << 10) == 0 {
            return write!(f, "{}KiB", b >> 10);
        }
        write!(f, "{b}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_human_forms() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert!(d("").is_err());
        assert!(d("fast").is_err());
        assert!(d("30").is_err());
    }

    #[test]
    fn wall_times_parse_rfc3339_and_print_back_to_the_nanosecond() {
        let t: WallTime = "2026-12-02T09:00:00.5Z".parse().unwrap();
        let since = t.0.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since, Duration::from_millis(1_796_202_000_500));
        assert_eq!(t.to_string(), "2026-12-02T09:00:00.500000000Z");
        assert_eq!(t.to_string().parse::<WallTime>().unwrap(), t);
        assert!("tomorrow"
            .parse::<WallTime>()
            .unwrap_err()
            .contains("RFC 3339"));
        // As far ahead or back on the monotonic clock as on the wall clock.
        let hour = Duration::from_secs(3600);
        let ahead = WallTime(SystemTime::now() + hour).instant();
        assert!(ahead > Instant::now() + hour - Duration::from_secs(60));
        let behind = WallTime(SystemTime::now() - Duration::from_secs(1)).instant();
        assert!(behind < Instant::now());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_suffixes() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("2300"), Ok(2300));
        assert_eq!(b("22MiB"), Ok(22 << 20));
        assert_eq!(b("22m"), Ok(22_000_000));
        assert_eq!(b("4KiB"), Ok(4096));
        assert_eq!(b("1.5GiB"), Ok(3 << 29));
        assert!(b("").is_err());
        assert!(b("MiB").is_err());
        assert!(b("12 parsecs").is_err());
        assert!(b("-1").is_err());
    }

    #[test]
    fn sizes_display_round_trip() {
        for s in ["22MiB", "2300", "4KiB", "1GiB", "64MB", "3GB"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
    }
}
