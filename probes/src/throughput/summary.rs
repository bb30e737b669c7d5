//! From measured slices to facts, series and verdicts: goodput, retransmits
//! and RTT per path and stream count, CPU per GB on both ends, the
//! overlay's tax per pair, stalls.

use serde_json::{json, Map, Value};

use super::cpu::CpuCost;
use super::interleave::{TcpTotals, UdpTotals};
use super::{Params, Target};
use crate::result::{ProbeResult, Status, Verdict};
use crate::rtt::key::{pair_key, path_key};

const GB: f64 = 1e9;

/// `<src>-><dst>/<path>/tcp<N>`
pub fn tcp_key(src: &str, target: &Target, streams: u32) -> String {
    format!("{}/tcp{streams}", path_key(src, &target.node, &target.path))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// User, system and softirq seconds per GB, and their sum.
fn per_gb(cost: &CpuCost, bytes: u64) -> Option<Value> {
    if bytes == 0 {
        return None;
    }
    let gb = bytes as f64 / GB;
    Some(json!({
        "user_s": round3(cost.user_s / gb),
        "system_s": round3(cost.system_s / gb),
        "softirq_s": round3(cost.softirq_s / gb),
        "total_s": round3(cost.charged_s() / gb),
    }))
}

pub(crate) fn goodput_gbit(t: &TcpTotals) -> f64 {
    let s = t.elapsed.as_secs_f64();
    if s > 0.0 {
        t.acked as f64 * 8.0 / s / GB
    } else {
        0.0
    }
}

/// Both ends' charged CPU seconds per GB moved; None without the
/// receiver's report.
pub(crate) fn cpu_s_per_gb(t: &TcpTotals) -> Option<f64> {
    if t.acked == 0 || t.received == 0 || t.unreported > 0 {
        return None;
    }
    Some(t.sender_cpu.charged_s() / (t.acked as f64 / GB) + t.receiver_cpu.charged_s() / (t.received as f64 / GB))
}

/// TCP facts, series and the stall verdict; false when no target could be
/// measured at all (`failures` then says why, one entry per target).
pub(crate) fn tcp(
    result: &mut ProbeResult,
    src: &str,
    measured: &[(Target, u32, TcpTotals)],
    failures: &mut Vec<String>,
) -> bool {
    let mut goodput = Map::new();
    let mut retransmits = Map::new();
    let mut rtt = Map::new();
    let mut cpu = Map::new();
    let mut cpu_total = Map::new();
    let mut stalls = Map::new();
    for (target, streams, t) in measured {
        let key = tcp_key(src, target, *streams);
        if let Some(why) = &t.failed {
            if t.slices == 0 {
                failures.push(format!("{key}: {why}"));
                continue;
            }
            result.warn(format!("{key}: stopped after {} slices: {why}", t.slices));
        }
        goodput.insert(key.clone(), json!(round3(goodput_gbit(t))));
        retransmits.insert(key.clone(), json!(t.retransmits));
        if t.slices > 0 {
            rtt.insert(key.clone(), json!(round3(t.rtt_us_sum / f64::from(t.slices))));
        }
        cpu.insert(
            key.clone(),
            json!({
                "sender": per_gb(&t.sender_cpu, t.acked),
                "receiver": per_gb(&t.receiver_cpu, t.received),
                "steal_pct": round3(t.sender_cpu.steal_pct()),
            }),
        );
        if let Some(total) = cpu_s_per_gb(t) {
            cpu_total.insert(key.clone(), json!(round3(total)));
        }
        if t.unreported > 0 {
            result.warn(format!(
                "{key}: the receiver sent no count in {} of {} slices (is it an infraqual agent or \
                 `lab echo` that serves the throughput data port?): its CPU is left out",
                t.unreported, t.slices
            ));
        }
        if let Some(why) = &t.stalled {
            stalls.insert(key.clone(), json!(why));
            result.warn(format!("{key}: {why}"));
        }
        result
            .series
            .insert(format!("goodput_gbit/{key}"), t.samples.clone());
    }
    if goodput.is_empty() {
        return false;
    }
    result.fact("tcp_goodput_gbit", Value::Object(goodput));
    result.fact("tcp_retransmits", Value::Object(retransmits));
    result.fact("tcp_rtt_us", Value::Object(rtt));
    result.fact("cpu_per_gb", Value::Object(cpu));
    result.fact("cpu_s_per_gb", Value::Object(cpu_total));
    overlay_tax(result, src, measured);
    result.verdicts.push(stall_verdict(&stalls));
    if !stalls.is_empty() {
        result.fact("stalls", Value::Object(stalls));
    }
    true
}

/// `<src>-><dst>/<path>/udp`
pub fn udp_key(src: &str, target: &Target) -> String {
    format!("{}/udp", path_key(src, &target.node, &target.path))
}

/// Share of the offered rate a step must have sent to count.
const OFFERED_IN_FULL: f64 = 0.95;

/// Charged CPU seconds per million packets.
fn per_mpkt(cost: &CpuCost, packets: u64) -> Value {
    if packets == 0 {
        return Value::Null;
    }
    json!(round3(cost.charged_s() / (packets as f64 / 1e6)))
}

/// UDP facts: every step per target, and the highest offered rate whose
/// loss stayed within the threshold; false when no target answered.
pub(crate) fn udp(
    result: &mut ProbeResult,
    src: &str,
    params: &Params,
    measured: &[(Target, UdpTotals)],
    failures: &mut Vec<String>,
) -> bool {
    let mut steps_fact = Map::new();
    let mut max_rate = Map::new();
    let mut attributed = Map::new();
    for (target, t) in measured {
        let key = udp_key(src, target);
        if let Some(why) = &t.failed {
            if t.steps.is_empty() {
                failures.push(format!("{key}: {why}"));
                continue;
            }
            result.warn(format!("{key}: stopped after {} steps: {why}", t.steps.len()));
        }
        let mut best = None;
        let mut steps = Vec::new();
        let mut causes = Vec::new();
        for s in &t.steps {
            let seconds = s.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
            let Some(r) = &s.receiver else {
                result.warn(format!(
                    "{key}: no count came back for {} packets/s: the receiver did not report",
                    s.offered_pps
                ));
                continue;
            };
            let loss = s.loss_pct().unwrap_or(100.0);
            let sent_pps = s.sent as f64 / seconds;
            // A step the sender could not offer in full says nothing about
            // the path at that rate.
            let offered_in_full = sent_pps >= s.offered_pps as f64 * OFFERED_IN_FULL;
            if loss <= params.loss_threshold_pct && offered_in_full {
                best = Some(s.offered_pps);
            }
            let wait_pct = r.receiver_wait_s.map(|w| w * 100.0 / r.cpu.wall_s.max(1e-9));
            if loss > params.loss_threshold_pct {
                if let Some(cause) = loss_cause(s.offered_pps, loss, wait_pct, r) {
                    causes.push(json!(cause));
                }
            }
            steps.push(json!({
                "offered_pps": s.offered_pps,
                "sent": s.sent,
                "refused": s.refused,
                "sent_pps": round3(sent_pps),
                "received": r.packets,
                "loss_pct": round3(loss),
                "reordered": r.reordered,
                "received_pps": round3(r.packets as f64 / seconds),
                "received_mbit": round3(r.bytes as f64 * 8.0 / seconds / 1e6),
                "sender_cpu_s_per_mpkt": per_mpkt(&s.sender_cpu, s.sent),
                "receiver_cpu_s_per_mpkt": per_mpkt(&r.cpu, r.packets),
                "receiver_steal_pct": round3(r.cpu.steal_pct()),
                "receiver_wait_pct": wait_pct.map(round3),
            }));
        }
        if let Some(pps) = best {
            max_rate.insert(key.clone(), json!(pps));
        }
        if !causes.is_empty() {
            for c in &causes {
                result.warn(format!("{key}: {}", c.as_str().unwrap_or_default()));
            }
            attributed.insert(key.clone(), Value::Array(causes));
        }
        steps_fact.insert(key, Value::Array(steps));
    }
    if steps_fact.is_empty() {
        return false;
    }
    result.fact("udp", Value::Object(steps_fact));
    result.fact("udp_max_rate_pps", Value::Object(max_rate));
    if !attributed.is_empty() {
        result.fact("udp_loss_causes", Value::Object(attributed));
    }
    true
}

/// A receiver waiting this share of a step for its CPU, or a machine losing
/// this share to its hypervisor, explains loss better than the network.
const CPU_CAUSE_PCT: f64 = 5.0;

/// Loss above the threshold blamed on the receiving node's CPU when its
/// receiving thread waited for a CPU (a competitor on it) or the hypervisor
/// stole time during the step; None when neither did (the network, or the
/// receiver's own speed).
fn loss_cause(pps: u64, loss: f64, wait_pct: Option<f64>, r: &super::wire::Report) -> Option<String> {
    let steal = r.cpu.steal_pct();
    let wait = wait_pct.unwrap_or(0.0);
    if wait < CPU_CAUSE_PCT && steal < CPU_CAUSE_PCT {
        return None;
    }
    let (what, pct) = if wait >= steal {
        ("waited for its CPU (another task on it: guest wait)", wait)
    } else {
        ("lost CPU to the hypervisor (steal)", steal)
    };
    Some(format!(
        "{loss:.1} % lost at {pps} packets/s while the receiver {what} {pct:.0} % of the step          (steal {steal:.1} %, receiving thread's run-queue wait {wait:.1} %): the receiving          node's CPU, not the network, dropped these packets"
    ))
}

/// A stream that stops moving is never acceptable: no profile threshold.
fn stall_verdict(stalls: &Map<String, Value>) -> Verdict {
    let (status, note) = if stalls.is_empty() {
        (Status::Pass, "every TCP stream kept moving".to_string())
    } else {
        (
            Status::Fail,
            format!(
                "stalled: {}: large segments vanish; run the mtu probe on these paths",
                stalls.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    };
    Verdict {
        check: "throughput.stall".into(),
        status,
        observed: Some(stalls.len() as f64),
        threshold: Some(1.0),
        unit: "paths".into(),
        note,
    }
}

/// `overlay_tax["<src>-><dst>/tcp<N>"]`: overlay against native on the same
/// pair and stream count, in percent of native.
fn overlay_tax(result: &mut ProbeResult, src: &str, measured: &[(Target, u32, TcpTotals)]) {
    let mut out = Map::new();
    let find = |node: &str, path: &str, streams: u32| {
        measured
            .iter()
            .find(|(t, s, m)| t.node == node && t.path == path && *s == streams && m.slices > 0)
            .map(|(_, _, m)| m)
    };
    for (target, streams, _) in measured.iter().filter(|(t, _, _)| t.path == "native") {
        let (Some(native), Some(overlay)) = (
            find(&target.node, "native", *streams),
            find(&target.node, "overlay", *streams),
        ) else {
            continue;
        };
        let (gn, go) = (goodput_gbit(native), goodput_gbit(overlay));
        if gn <= 0.0 {
            continue;
        }
        let cpu_pct = match (cpu_s_per_gb(native), cpu_s_per_gb(overlay)) {
            (Some(n), Some(o)) if n > 0.0 => json!(round3((o - n) * 100.0 / n)),
            _ => Value::Null,
        };
        out.insert(
            format!("{}/tcp{streams}", pair_key(src, &target.node)),
            json!({
                "throughput_pct": round3((go - gn) * 100.0 / gn),
                "cpu_per_gb_pct": cpu_pct,
                "native_gbit": round3(gn),
                "overlay_gbit": round3(go),
            }),
        );
    }
    if !out.is_empty() {
        result.fact("overlay_tax", Value::Object(out));
    }
}
