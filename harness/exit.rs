//! Exit codes shared by every command (docs/architecture.md): 0 all checks pass,
//! 1 a check failed, 2 the run could not complete.

use std::process::ExitCode;

use infraqual_probes::Status;
use infraqual_reports::bundle::RunVerdict;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    CheckFailed,
    Incomplete,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::CheckFailed => 1,
            Outcome::Incomplete => 2,
        }
    }

    pub fn from_status(status: Status) -> Self {
        match status {
            Status::Fail => Outcome::CheckFailed,
            Status::Pass | Status::Warn | Status::Skip => Outcome::Pass,
        }
    }

    pub fn from_verdict(verdict: RunVerdict) -> Self {
        match verdict {
            RunVerdict::Pass => Outcome::Pass,
            RunVerdict::Fail => Outcome::CheckFailed,
            RunVerdict::Incomplete => Outcome::Incomplete,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o.code())
    }
}

/// Prints an error with its chain of causes on one line (`a: b: c`), the
/// shape users grep for, and returns exit code 2.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
    let mut line = String::new();
    for part in chain {
        // Library errors often embed their source already; skip repeats.
        if !line.contains(&part) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&part);
        }
    }
    eprintln!("infraqual: error: {line}");
    Outcome::Incomplete.into()
}
