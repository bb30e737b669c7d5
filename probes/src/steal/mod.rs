//! The steal probe: is a noisy neighbour taking my CPU? Two independent
//! signals on the same CPUs: the hypervisor's steal counter (/proc/stat) and
//! a hiccup detector (one pinned busy thread per CPU recording every gap in
//! a monotonic clock). The busy threads also make steal accrue at all (a
//! vCPU only accrues steal while it wants to run), and their own schedstat
//! tells time lost to other tasks in this machine from time lost outside it.

mod affinity;
mod attribution;
mod cgroup;
mod counters;
mod hiccup;
mod measure;
mod report;
mod rounds;
mod schedstat;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{deadline_for_duration, Better, JudgedFact, Probe, ProbeName, QualifyOptions};
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::units::HumanDuration;

pub use affinity::{format_cpu_list, parse_cpu_list};

pub const NAME: ProbeName = ProbeName::declare("steal");

/// The steal probe's declaration.
pub struct Steal;

impl Probe for Steal {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str =
        "Is a noisy neighbour taking my CPU? Steal counter, hiccup detector, run-queue wait.";
    const HEAVY: bool = true;
    const JUDGED_FACTS: &'static [JudgedFact] = &[
        lower_pct("steal_pct"),
        lower_pct("lost_pct"),
        lower_pct("guest_wait_pct"),
        lower_pct("throttled_pct"),
        lower_pct("unexplained_pct"),
    ];
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.plan().map(|_| ())
    }

    fn deadline(params: &Params) -> Duration {
        deadline_for_duration(params.duration.0)
    }

    fn qualify_params(opts: &QualifyOptions<'_>) -> Params {
        let mut params = Params::default();
        if opts.quick {
            params.duration = HumanDuration(QUICK_DURATION);
        }
        params
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }

    fn merge_rounds(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
        rounds::merge(rounds, profile)
    }
}

/// `qualify --quick`: long enough for five one-second samples.
const QUICK_DURATION: Duration = Duration::from_secs(5);

const fn lower_pct(fact: &'static str) -> JudgedFact {
    JudgedFact {
        fact,
        unit: "%",
        better: Better::Lower,
        keyed: false,
    }
}
/// The profile check judged from the steal share.
pub const CHECK: &str = "steal.pct";

const MIN_DURATION: Duration = Duration::from_secs(1);
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
const MIN_THRESHOLD: Duration = Duration::from_micros(1);
const MAX_THRESHOLD: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How long to measure (1s ..= 1h).
    pub duration: HumanDuration,
    /// CPUs to measure, `0-3,6`; default: every CPU this process may use.
    pub cpus: Option<String>,
    /// Sampling interval of /proc/stat and the per-second series.
    pub interval: HumanDuration,
    /// Fixed gap threshold; default max(10 µs, 8 x the loop's smallest step).
    pub threshold: Option<HumanDuration>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            duration: HumanDuration(Duration::from_secs(30)),
            cpus: None,
            interval: HumanDuration(Duration::from_secs(1)),
            threshold: None,
        }
    }
}

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub duration: Duration,
    pub interval: Duration,
    pub cpus: Vec<usize>,
    pub threshold_ns: Option<u64>,
}

impl Params {
    pub fn plan(&self) -> Result<Plan, ProbeError> {
        let duration = self.duration.0;
        if !(MIN_DURATION..=MAX_DURATION).contains(&duration) {
            return Err(ProbeError::invalid(
                "duration",
                format!("{} is outside 1s ..= 1h", self.duration),
            ));
        }
        let interval = self.interval.0;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) || interval > duration {
            return Err(ProbeError::invalid(
                "interval",
                format!(
                    "{} must be within 100ms ..= 60s and not longer than the duration",
                    self.interval
                ),
            ));
        }
        let threshold_ns = match self.threshold {
            Some(t) if !(MIN_THRESHOLD..=MAX_THRESHOLD).contains(&t.0) => {
                return Err(ProbeError::invalid(
                    "threshold",
                    format!("{t} is outside 1us ..= 1s"),
                ));
            }
            Some(t) => Some(hiccup::duration_ns(t.0)),
            None => None,
        };
        let allowed =
            affinity::allowed_cpus().map_err(|e| ProbeError::io("sched_getaffinity", e))?;
        let cpus = match &self.cpus {
            None => allowed,
            Some(text) => {
                let cpus = parse_cpu_list(text).map_err(|e| ProbeError::invalid("cpus", e))?;
                let refused: Vec<usize> = cpus
                    .iter()
                    .copied()
                    .filter(|c| !allowed.contains(c))
                    .collect();
                if !refused.is_empty() {
                    return Err(ProbeError::invalid(
                        "cpus",
                        format!(
                            "CPU {} not available to this process (allowed: {})",
                            format_cpu_list(&refused),
                            format_cpu_list(&allowed)
                        ),
                    ));
                }
                cpus
            }
        };
        if cpus.is_empty() {
            return Err(ProbeError::invalid("cpus", "no CPU to measure"));
        }
        Ok(Plan {
            duration,
            interval,
            cpus,
            threshold_ns,
        })
    }
}

/// Measures for `params.duration` (or until `ctx.cancel`), then judges the
/// steal share with the profile's `steal.pct` thresholds.
pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    let started = Instant::now();
    let plan = params.plan()?;
    let measurement = measure::measure(&plan, &ctx.cancel)?;
    let mut result = ProbeResult::new(NAME, &ctx.node);
    result.param("duration", params.duration.to_string());
    result.param("cpus", format_cpu_list(&plan.cpus));
    result.param("interval", params.interval.to_string());
    if let Some(t) = params.threshold {
        result.param("threshold", t.to_string());
    }
    report::fill(&mut result, &plan, &measurement, ctx)?;
    result.finish(started);
    Ok(result)
}
