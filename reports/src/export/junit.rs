//! JUnit XML for CI systems (`--junit FILE`): one testsuite per node, one
//! testcase per check, so a CI page shows which check failed on which node
//! with its observed value and threshold. A warning passes (as the exit code
//! does); a skipped check is `<skipped>`; a probe that could not run is an
//! `<error>`. compare writes one testsuite per run against the baseline,
//! one testcase per judged metric, a regression being a failure.

use std::fmt::Write as _;

use infraqual_probes::{Status, Verdict};

use crate::bundle::RunRecord;
use crate::format;
use crate::markup::escape;

/// What became of one testcase.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Passed { message: Option<String> },
    Failed { message: String },
    Errored { message: String },
    Skipped { message: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TestSuite {
    pub name: String,
    pub cases: Vec<TestCase>,
}

impl TestSuite {
    fn count(&self, pick: fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| pick(&c.outcome)).count()
    }
}

/// `observed 12.1 ms, threshold 10 ms` (or what of it is known), then the
/// check's own note.
fn verdict_message(v: &Verdict) -> String {
    let mut parts = Vec::new();
    if let Some(o) = v.observed {
        parts.push(format!("observed {}", format::value(o, &v.unit)));
    }
    if let Some(t) = v.threshold {
        parts.push(format!("threshold {}", format::value(t, &v.unit)));
    }
    if !v.note.is_empty() {
        parts.push(v.note.clone());
    }
    parts.join(", ")
}

fn verdict_case(v: &Verdict) -> TestCase {
    let message = verdict_message(v);
    let outcome = match v.status {
        Status::Pass => Outcome::Passed { message: None },
        Status::Warn => Outcome::Passed {
            message: Some(format!("WARN: {message}")),
        },
        Status::Fail => Outcome::Failed { message },
        Status::Skip => Outcome::Skipped { message },
    };
    TestCase {
        name: v.check.clone(),
        outcome,
    }
}

/// One suite per node: its checks, then what could not run.
pub fn run_suites(run: &RunRecord) -> Vec<TestSuite> {
    run.nodes
        .iter()
        .map(|node| {
            let mut cases: Vec<TestCase> = node
                .inventory
                .iter()
                .chain(node.results.iter())
                .flat_map(|r| r.verdicts.iter().map(verdict_case))
                .collect();
            for e in &node.errors {
                cases.push(TestCase {
                    name: format!("{}.run", e.probe.as_deref().unwrap_or("node")),
                    outcome: Outcome::Errored {
                        message: e.message.clone(),
                    },
                });
            }
            TestSuite {
                name: node.name.clone(),
                cases,
            }
        })
        .collect()
}

/// The whole document; `name` is the testsuites element's name (the run
/// id, or what was compared).
pub fn document(name: &str, suites: &[TestSuite]) -> String {
    let total = |pick: fn(&Outcome) -> bool| suites.iter().map(|s| s.count(pick)).sum::<usize>();
    let failed = |o: &Outcome| matches!(o, Outcome::Failed { .. });
    let errored = |o: &Outcome| matches!(o, Outcome::Errored { .. });
    let skipped = |o: &Outcome| matches!(o, Outcome::Skipped { .. });
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        escape(name),
        total(|_| true),
        total(failed),
        total(errored),
        total(skipped)
    );
    for s in suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            escape(&s.name),
            s.cases.len(),
            s.count(failed),
            s.count(errored),
            s.count(skipped)
        );
        for c in &s.cases {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&s.name),
                escape(&c.name)
            );
            match &c.outcome {
                Outcome::Passed { message: None } => x.push_str("/>\n"),
                Outcome::Passed { message: Some(m) } => {
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        escape(m)
                    );
                }
                Outcome::Failed { message } => element(&mut x, "failure", message),
                Outcome::Errored { message } => element(&mut x, "error", message),
                Outcome::Skipped { message } => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(message)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn element(x: &mut String, tag: &str, message: &str) {
    let m = escape(message);
    let _ = writeln!(
        x,
        ">\n      <{tag} message=\"{m}\" type=\"{tag}\">{m}</{tag}>\n    </testcase>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: Status, observed: Option<f64>) -> Verdict {
        Verdict {
            check: "fsync.fdatasync.p99".into(),
            status,
            observed,
            threshold: Some(10_000_000.0),
            unit: "ns".into(),
            note: String::new(),
        }
    }

    #[test]
    fn a_failed_check_names_observed_and_threshold() {
        let c = verdict_case(&verdict(Status::Fail, Some(12_100_000.0)));
        assert_eq!(
            c.outcome,
            Outcome::Failed {
                message: "observed 12.1 ms, threshold 10.0 ms".into()
            }
        );
    }

    #[test]
    fn warnings_pass_and_skips_are_skipped() {
        assert!(matches!(
            verdict_case(&verdict(Status::Warn, Some(6e6))).outcome,
            Outcome::Passed { message: Some(_) }
        ));
        assert!(matches!(
            verdict_case(&verdict(Status::Skip, None)).outcome,
            Outcome::Skipped { .. }
        ));
    }

    #[test]
    fn counts_and_escaping() {
        let suites = vec![TestSuite {
            name: "n<1>".into(),
            cases: vec![
                TestCase {
                    name: "a".into(),
                    outcome: Outcome::Failed {
                        message: "x & y".into(),
                    },
                },
                TestCase {
                    name: "b".into(),
                    outcome: Outcome::Passed { message: None },
                },
            ],
        }];
        let x = document("run", &suites);
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""));
        assert!(x.contains("name=\"n&lt;1&gt;\""));
        assert!(x.contains("message=\"x &amp; y\""));
    }
}
