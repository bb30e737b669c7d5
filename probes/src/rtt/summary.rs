//! From measured histograms to facts and verdicts: loss per path, overlay
//! overhead per pair, the worst pair judged by the profile.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::key::{pair_key, RttMetricKey};
use super::{Kind, Measured};
use crate::context::ProbeContext;
use crate::result::ProbeResult;

pub(crate) fn loss_fact(m: &Measured) -> Value {
    let lost = m.sent.saturating_sub(m.replied);
    let pct = if m.sent == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / m.sent as f64
    };
    json!({
        "sent": m.sent,
        "received": m.replied,
        "lost": lost,
        "loss_pct": round3(pct),
        "late": m.late,
        "duplicates": m.duplicates,
        "errors": m.errors,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// `overlay_overhead_us["<src>-><dst>"]`: overlay minus native, p50 and p99,
/// in µs and percent of native, from UDP (else tcp_rr) where both exist.
pub(crate) fn overlay_overhead(result: &mut ProbeResult, src: &str) {
    let mut out = Map::new();
    let dsts: BTreeSet<String> = result
        .metrics
        .keys()
        .filter_map(|k| k.parse::<RttMetricKey>().ok())
        .filter(|k| k.source == src)
        .map(|k| k.target)
        .collect();
    for dst in dsts {
        for kind in [Kind::Udp, Kind::TcpRr] {
            let summary_on = |path: &str| {
                let key = RttMetricKey {
                    source: src.to_string(),
                    target: dst.clone(),
                    path: path.to_string(),
                    kind,
                };
                result.metrics.get(&key.to_string())
            };
            let (Some(n), Some(o)) = (summary_on("native"), summary_on("overlay")) else {
                continue;
            };
            let us = |ns: u64| ns as f64 / 1000.0;
            let pct = |o: u64, n: u64| {
                if n == 0 {
                    0.0
                } else {
                    (o as f64 - n as f64) * 100.0 / n as f64
                }
            };
            out.insert(
                pair_key(src, &dst),
                json!({
                    "kind": kind.as_str(),
                    "p50_us": round3(us(o.p50) - us(n.p50)),
                    "p99_us": round3(us(o.p99) - us(n.p99)),
                    "p50_pct": round3(pct(o.p50, n.p50)),
                    "p99_pct": round3(pct(o.p99, n.p99)),
                    "native_p50_us": round3(us(n.p50)),
                    "overlay_p50_us": round3(us(o.p50)),
                }),
            );
            break;
        }
    }
    if !out.is_empty() {
        result.fact("overlay_overhead_us", Value::Object(out));
    }
}

/// The worst UDP p99 and the worst loss, judged by the profile (checks
/// `rtt.udp.p99`, `rtt.loss.pct`).
pub(crate) fn verdicts(result: &mut ProbeResult, ctx: &ProbeContext) {
    let worst_p99 = result
        .metrics
        .iter()
        .filter(|(k, _)| k.parse::<RttMetricKey>().is_ok_and(|k| k.kind == Kind::Udp))
        .max_by_key(|(_, m)| m.p99)
        .map(|(k, m)| (k.clone(), m.p99));
    if let Some((key, p99)) = worst_p99 {
        let mut v = ctx.profile.judge("rtt.udp.p99", p99 as f64);
        v.note = format!("{} (worst: {key})", v.note).trim().to_string();
        result.verdicts.push(v);
    }
    let worst_loss = result
        .facts
        .get("loss")
        .and_then(Value::as_object)
        .and_then(|paths| {
            paths
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.get("loss_pct")?.as_f64()?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        });
    if let Some((key, pct)) = worst_loss {
        let mut v = ctx.profile.judge("rtt.loss.pct", pct);
        v.note = format!("{} (worst: {key})", v.note).trim().to_string();
        result.verdicts.push(v);
    }
}
