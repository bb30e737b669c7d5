//! A comparison as JUnit testcases: one per judged latency (regressed is a
//! failure unless the metric is context only, with both runs' figures and the interval) and one per scalar
//! fact (never judged, so it always passes and says what changed).

use super::super::{change_text, percent, Comparison};
use crate::compare::verdict::ChangeVerdict;
use crate::export::junit::{Outcome, TestCase, TestSuite};
use crate::format;

pub fn suites(c: &Comparison) -> Vec<TestSuite> {
    let mut cases = Vec::new();
    for l in &c.latencies {
        let v = |x: u64| format::value(x as f64, &l.unit);
        let interval = l
            .p99
            .as_ref()
            .or(l.median.as_ref())
            .map(change_text)
            .unwrap_or_else(|| "-".into());
        let message = format!(
            "{} on {}: p50 {} -> {}, p99 {} -> {}, change {interval}: {} ({})",
            l.name(),
            l.subject,
            v(l.a.p50),
            v(l.b.p50),
            v(l.a.p99),
            v(l.b.p99),
            l.verdict_cell(),
            l.run_to_run.decided_by(c.noise)
        );
        let message = match &l.context_why {
            Some(why) => format!("{message}; not in the verdict: {why}"),
            None => message,
        };
        let outcome = match l.verdict {
            ChangeVerdict::Regressed if l.in_verdict() => Outcome::Failed { message },
            _ => Outcome::Passed {
                message: Some(message),
            },
        };
        cases.push(TestCase {
            name: format!("{} {}", l.name(), l.subject),
            outcome,
        });
    }
    for s in &c.scalars {
        cases.push(TestCase {
            name: format!("{} {} {}", s.probe, s.fact, s.subject),
            outcome: Outcome::Passed {
                message: Some(format!(
                    "{} -> {} ({}), not judged",
                    format::value(s.a, &s.unit),
                    format::value(s.b, &s.unit),
                    s.change.map(percent).unwrap_or_else(|| "-".into())
                )),
            },
        });
    }
    vec![TestSuite {
        name: format!("{} vs {}", c.label_b, c.label_a),
        cases,
    }]
}
