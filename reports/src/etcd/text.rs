//! The prediction as the plain text `infraqual etcd` prints.

use std::fmt::Write as _;

use super::{model, Prediction};
use crate::format;

fn ms(ns: u64) -> String {
    format::duration_ns(ns as f64)
}

pub fn render(p: &Prediction) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Predicted put commit latency ({} Monte Carlo draws per placement and leader, seed {:#x};\n\
         commit = max(leader WAL fdatasync, quorum-th fastest follower round trip + its fdatasync);\n\
         round trips: {}; fdatasync: each node's fsync histogram)",
        p.samples, p.seed, p.rtt_source
    );
    if let Some(t) = &p.request_time {
        let _ = writeln!(
            out,
            "plus etcd's own request time, one draw per put: p50 {}, p99 {} ({} puts; {})",
            ms(t.p50_ns),
            ms(t.p99_ns),
            t.puts,
            t.source
        );
        let _ = writeln!(
            out,
            "plus the wait for the leader's backend commit at the apply: the leader's applies' \
             waits as its fsync (etcd-wal) timed them, for the puts of many clients (an open \
             schedule) or of one client in turn (--sequential) as it ran, or, where not \
             recorded, a commit of {1} \
             fdatasyncs of its histogram every {0} ms (etcd's --backend-batch-interval default)",
            model::BACKEND_BATCH_INTERVAL_NS / 1_000_000,
            model::BACKEND_COMMIT_SYNCS,
        );
    }
    let _ = writeln!(
        out,
        "{:<40} {:<16} {:>10} {:>10}",
        "members", "leader", "p50", "p99"
    );
    for pl in &p.placements {
        for (i, l) in pl.leaders.iter().enumerate() {
            let members = if i == 0 {
                format!(
                    "{} (quorum {})",
                    pl.members.join(","),
                    model::quorum(pl.members.len())
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{members:<40} {:<16} {:>10} {:>10}",
                l.leader,
                ms(l.p50_ns),
                ms(l.p99_ns)
            );
        }
    }
    let best = p.best();
    let lead = best.best_leader();
    let _ = writeln!(
        out,
        "\nbest placement: {} with leader {}: commit p50 {}, p99 {}",
        best.members.join(","),
        lead.leader,
        ms(lead.p50_ns),
        ms(lead.p99_ns)
    );
    for s in &p.member_sync {
        let backend = s
            .backend_commit
            .as_ref()
            .map(|b| {
                let shape = if b.sequential {
                    "one client in turn"
                } else {
                    "open schedule"
                };
                let wait = b
                    .apply_wait_p99_ns
                    .map(|w| format!(", apply wait p99 {} ({shape})", ms(w)))
                    .unwrap_or_default();
                format!(
                    "; backend commit p50 {}, p99 {} ({} commits){wait}",
                    ms(b.p50_ns),
                    ms(b.p99_ns),
                    b.commits
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} WAL fdatasync p50 {}, p99 {} (fsync mode {}){backend}",
            s.node,
            ms(s.p50_ns),
            ms(s.p99_ns),
            s.mode
        );
    }
    out.push_str("\ntiming flags for the best placement:\n");
    for line in p.flags.lines(&p.rtt_source) {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("\nverdicts:\n");
    for v in &p.verdicts {
        let num = |x: Option<f64>| {
            x.map(|x| format::value(x, &v.verdict.unit))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "  {:<5} {} {}: {} (threshold {}){}",
            v.verdict.status.as_str().to_uppercase(),
            v.verdict.check,
            v.subject,
            num(v.verdict.observed),
            num(v.verdict.threshold),
            if v.verdict.note.is_empty() {
                String::new()
            } else {
                format!("; {}", v.verdict.note)
            }
        );
    }
    out
}
