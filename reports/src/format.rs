//! Human formatting of values by unit, shared by the terminal table, CSV
//! headers and the HTML report.

use serde_json::Value;

/// `260 µs`, `12.1 ms`, `4.7 %`, `131072 entries`.
pub fn value(v: f64, unit: &str) -> String {
    match unit {
        "ns" => duration_ns(v),
        "%" => format!("{v:.1} %"),
        "" => trim_float(v),
        u => format!("{} {u}", trim_float(v)),
    }
}

/// The largest time unit that keeps `ns` at or above 1: (divisor, name).
pub fn ns_unit(ns: f64) -> (f64, &'static str) {
    let abs = ns.abs();
    if abs >= 1e9 {
        (1e9, "s")
    } else if abs >= 1e6 {
        (1e6, "ms")
    } else if abs >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    }
}

/// Nanoseconds in the largest unit that keeps the number above 1.
pub fn duration_ns(ns: f64) -> String {
    let (div, unit) = ns_unit(ns);
    format!("{} {unit}", three_significant(ns / div))
}

/// Three significant digits, as the histograms record.
pub fn three_significant(v: f64) -> String {
    let abs = v.abs();
    if abs >= 100.0 || abs == 0.0 {
        format!("{v:.0}")
    } else if abs >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        three_significant(v)
    }
}

/// A fact value in one line: strings bare, null as `-`, small arrays and
/// objects as compact JSON.
pub fn fact(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(value(260_000.0, "ns"), "260 µs");
        assert_eq!(value(12_100_000.0, "ns"), "12.1 ms");
        assert_eq!(value(950.0, "ns"), "950 ns");
        assert_eq!(value(2_500_000_000.0, "ns"), "2.50 s");
        assert_eq!(value(4.66, "%"), "4.7 %");
        assert_eq!(value(131072.0, "entries"), "131072 entries");
    }
}
