//! One source's rtt result from the results of its pairs. A coordinator that
//! measures a source's targets in separate jobs (one per scheduled pair)
//! still records one rtt result per node: metrics are keyed by pair and
//! path, and every rtt fact is a map keyed by pair or path, so the union
//! loses nothing. Every rtt verdict judges the worst pair (highest p99,
//! loss or overhead) with one profile, so the part with the highest
//! observed value carries the verdict the union would get.

use serde_json::Value;

use crate::result::{ProbeResult, Verdict};

/// The union of `parts` (all rtt results of one node), None when empty.
pub fn merge_targets(parts: Vec<ProbeResult>) -> Option<ProbeResult> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next()?;
    for part in parts {
        if part.started_at < merged.started_at {
            merged.started_at = part.started_at.clone();
        }
        merged.duration_ms += part.duration_ms;
        if let (Some(Value::Array(into)), Some(Value::Array(from))) = (
            merged.params.get_mut("targets"),
            part.params.get("targets"),
        ) {
            into.extend(from.iter().cloned());
        }
        for (name, value) in part.facts {
            match (merged.facts.get_mut(&name), value) {
                (Some(Value::Object(into)), Value::Object(from)) => into.extend(from),
                (Some(_), _) => {}
                (None, value) => {
                    merged.facts.insert(name, value);
                }
            }
        }
        merged.metrics.extend(part.metrics);
        merged.series.extend(part.series);
        for verdict in part.verdicts {
            keep_worse(&mut merged.verdicts, verdict);
        }
        merged.warnings.extend(part.warnings);
    }
    Some(merged)
}

fn keep_worse(verdicts: &mut Vec<Verdict>, verdict: Verdict) {
    match verdicts.iter_mut().find(|v| v.check == verdict.check) {
        None => verdicts.push(verdict),
        Some(kept) => {
            let higher = match (kept.observed, verdict.observed) {
                (None, Some(_)) => true,
                (Some(k), Some(v)) => v > k,
                _ => false,
            };
            if higher {
                *kept = verdict;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ProbeContext;
    use crate::result::Status;
    use crate::rtt::{self, Kind, Params, Target};
    use crate::Profile;

    fn part(node: &str, p99: f64) -> ProbeResult {
        let mut r = ProbeResult::new(rtt::NAME, "src");
        r.params.insert(
            "targets".into(),
            serde_json::json!([{ "node": node, "path": "native" }]),
        );
        let mut loss = serde_json::Map::new();
        loss.insert(format!("src->{node}/native"), serde_json::json!({ "sent": 1 }));
        r.fact("loss", Value::Object(loss));
        let profile = Profile::builtin("etcd").unwrap();
        r.verdicts.push(profile.judge("rtt.udp.p99", p99));
        r.warn(format!("warning about {node}"));
        r
    }

    #[test]
    fn facts_and_targets_are_united_and_the_worst_verdict_kept() {
        let merged = merge_targets(vec![part("a", 1e6), part("b", 2e8), part("c", 3e6)]).unwrap();
        let loss = merged.facts["loss"].as_object().unwrap();
        assert_eq!(loss.len(), 3, "{loss:?}");
        assert_eq!(merged.params["targets"].as_array().unwrap().len(), 3);
        assert_eq!(merged.verdicts.len(), 1);
        assert_eq!(merged.verdicts[0].observed, Some(2e8));
        assert_eq!(merged.verdicts[0].status, Status::Fail);
        assert_eq!(merged.warnings.len(), 3);
        assert!(merge_targets(Vec::new()).is_none());
    }

    #[test]
    fn merging_per_target_runs_gives_the_metrics_of_one_run() {
        let responder = crate::rtt::responder::EchoResponder::start(
            "127.0.0.1:0".parse().unwrap(),
            crate::CancelToken::new(),
        )
        .unwrap();
        let port = responder.port();
        let target = |node: &str| Target {
            node: node.into(),
            path: "native".into(),
            address: "127.0.0.1".parse().unwrap(),
            port,
        };
        let ctx = ProbeContext::new("src", Profile::default());
        let run = |targets: Vec<Target>| {
            let params = Params {
                targets,
                count: 50,
                kinds: vec![Kind::Udp],
                ..Params::default()
            };
            rtt::run(&params, &ctx).unwrap()
        };
        let whole = run(vec![target("a"), target("b")]);
        let merged = merge_targets(vec![run(vec![target("a")]), run(vec![target("b")])]).unwrap();
        let keys = |r: &ProbeResult| r.metrics.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&merged), keys(&whole));
        let fact_keys = |r: &ProbeResult| {
            r.facts["loss"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
        };
        assert_eq!(fact_keys(&merged), fact_keys(&whole));
        let checks = |r: &ProbeResult| r.verdicts.iter().map(|v| v.check.clone()).collect::<Vec<_>>();
        assert_eq!(checks(&merged), checks(&whole));
    }
}
