//! The report's etcd section: written when the run has both fsync and rtt
//! results, with the prediction or the one line saying why there is none.

use std::fmt::Write as _;

use infraqual_probes::Profile;

use super::{model, predict, timing, Options};
use crate::bundle::RunRecord;
use crate::format;
use crate::markup::{badge, escape, table_start, text_row};

fn ms(ns: u64) -> String {
    format::duration_ns(ns as f64)
}

pub fn section(run: &RunRecord, profile: &Profile, h: &mut String) {
    let has = |probe| run.results().any(|(_, r)| r.probe == probe);
    if !has(infraqual_probes::fsync::NAME) || !has(infraqual_probes::rtt::NAME) {
        return;
    }
    h.push_str("<h2 id=\"etcd\">etcd cluster prediction</h2>");
    let p = match predict(run, None, profile, Options::default()) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(
                h,
                "<p>No prediction: {}. <code>infraqual etcd RUN_DIR --members a,b,c</code> \
                 predicts the members you name.</p>",
                escape(&e.to_string())
            );
            return;
        }
    };
    let _ = write!(
        h,
        "<p class=\"meta\">A put commits when the leader's WAL fdatasync and a quorum of \
         followers' round trip plus fdatasync have ended; {} Monte Carlo draws per placement and \
         leader (seed {:#x}) from the run's histograms; round trips: {}.</p>",
        p.samples,
        p.seed,
        escape(&p.rtt_source)
    );
    let best = p.best();
    let lead = best.best_leader();
    let _ = write!(
        h,
        "<p>Best placement: <strong>{}</strong>, leader <strong>{}</strong>: commit p50 {}, p99 {}.</p>",
        escape(&best.members.join(", ")),
        escape(&lead.leader),
        escape(&ms(lead.p50_ns)),
        escape(&ms(lead.p99_ns))
    );
    table_start(
        h,
        &["members", "quorum", "leader", "commit p50", "commit p99"],
    );
    for pl in &p.placements {
        for l in &pl.leaders {
            text_row(
                h,
                &[
                    pl.members.join(", "),
                    model::quorum(pl.members.len()).to_string(),
                    l.leader.clone(),
                    ms(l.p50_ns),
                    ms(l.p99_ns),
                ],
            );
        }
    }
    h.push_str("</table>");
    h.push_str("<h3>Timing flags for the best placement</h3><ul>");
    for line in p.flags.lines(&p.rtt_source) {
        let _ = write!(h, "<li>{}</li>", escape(&line));
    }
    let _ = write!(h, "</ul><p class=\"meta\">{}</p>", escape(timing::SOURCE));
    table_start(
        h,
        &[
            "subject",
            "check",
            "observed",
            "threshold",
            "status",
            "note",
        ],
    );
    for v in &p.verdicts {
        let num = |x: Option<f64>| {
            x.map(|x| format::value(x, &v.verdict.unit))
                .unwrap_or_else(|| "-".into())
        };
        let s = v.verdict.status.as_str();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.subject),
            escape(&v.verdict.check),
            escape(&num(v.verdict.observed)),
            escape(&num(v.verdict.threshold)),
            badge(s, &s.to_uppercase()),
            escape(&v.verdict.note)
        );
    }
    h.push_str("</table>");
}
