//! Turns a measurement into the result contract: whole-run shares
//! (`facts.steal_pct`, `lost_pct`, `guest_wait_pct`), per-CPU facts, the
//! per-interval series (`pct/steal`, `pct/lost`, `pct/guest_wait`,
//! `pct/throttled`), the hiccup histogram, the cross-checks between the
//! signals, and the `steal.pct` verdict.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;
use crate::inventory::{detect_container, detect_hypervisor};
use crate::profile::Profile;
use crate::result::ProbeResult;

use super::attribution::{window, Shares};
use super::measure::Measurement;
use super::{format_cpu_list, Plan, CHECK, NAME};

/// Lost time counts as "far above" what steal, guest wait and throttling
/// explain when the rest is at least this many points...
const UNEXPLAINED_MIN_POINTS: f64 = 2.0;
/// ...and at least this fraction of all lost time.
const UNEXPLAINED_MIN_FRACTION: f64 = 0.5;
/// Guest wait above this share is worth a warning: the machine itself is busy.
const GUEST_WAIT_WARN_PCT: f64 = 5.0;
const THROTTLED_WARN_PCT: f64 = 1.0;

/// Whether /proc/stat steal can be believed here.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum StealCounter {
    Present,
    BareMetal,
    NotReported,
    Container(String),
}

impl StealCounter {
    fn detect(steal_ticks_since_boot: u64) -> StealCounter {
        if let Some(runtime) = detect_container() {
            return StealCounter::Container(runtime);
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virt = detect_hypervisor(
            &cpuinfo,
            Path::new("/sys/class/dmi/id"),
            Path::new("/sys/hypervisor/type"),
        );
        if !virt.hypervisor_flag {
            StealCounter::BareMetal
        } else if steal_ticks_since_boot > 0 {
            StealCounter::Present
        } else {
            // A VM with a steal clock accrues some steal over any real uptime.
            StealCounter::NotReported
        }
    }

    /// The counter a result's `steal_counter` fact names (merging rounds
    /// reads it back); an unknown label is not trusted.
    pub(super) fn from_label(label: &str) -> StealCounter {
        if label == "present" {
            StealCounter::Present
        } else if label.starts_with("not applicable") {
            StealCounter::BareMetal
        } else if let Some(rt) = label
            .strip_prefix("untrusted (container: ")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            StealCounter::Container(rt.to_string())
        } else {
            StealCounter::NotReported
        }
    }

    fn label(&self) -> String {
        match self {
            StealCounter::Present => "present".into(),
            StealCounter::BareMetal => "not applicable (bare metal)".into(),
            StealCounter::NotReported => "not reported (no steal clock)".into(),
            StealCounter::Container(rt) => format!("untrusted (container: {rt})"),
        }
    }

    fn trusted(&self) -> bool {
        matches!(self, StealCounter::Present | StealCounter::BareMetal)
    }

    fn warning(&self) -> Option<String> {
        match self {
            StealCounter::Container(rt) => Some(format!(
                "running in a container ({rt}): /proc/stat steal is the host kernel's counter, \
                 not this container's, so it cannot be trusted; the hiccup detector's lost \
                 time is the independent signal"
            )),
            StealCounter::NotReported => Some(
                "this VM has accrued no steal since boot: its hypervisor exposes no steal \
                 clock, so /proc/stat steal reads 0 even when the host takes the CPU and \
                 cannot be trusted; the hiccup detector's lost time is the independent signal"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub fn fill(
    result: &mut ProbeResult,
    plan: &Plan,
    m: &Measurement,
    ctx: &ProbeContext,
) -> Result<(), ProbeError> {
    let (Some(first), Some(last)) = (m.samples.first(), m.samples.last()) else {
        return Err(ProbeError::Failed {
            probe: NAME.into(),
            message: "no samples were taken".into(),
        });
    };
    let whole = window(first, last, &plan.cpus);
    let all = whole.overall;

    result.fact("steal_pct", round(all.steal_pct));
    result.fact("lost_pct", round(all.lost_pct));
    result.fact("guest_wait_pct", all.guest_wait_pct.map(round));
    result.fact("throttled_pct", all.throttled_pct.map(round));
    result.fact("unexplained_pct", round(all.unexplained_pct));
    result.fact("irq_pct", round(all.irq_pct));
    result.fact("preemptions", all.preemptions);
    result.fact(
        "steal_pct_machine",
        round(last.stat.total.delta(&first.stat.total).steal_pct()),
    );
    result.fact("cpus", format_cpu_list(&plan.cpus));
    result.fact("measured_seconds", round(whole.seconds));

    let mut hiccups = LatencyHistogram::new();
    for outcome in &m.outcomes {
        hiccups.merge(&outcome.hiccups)?;
    }
    result.fact("hiccups", hiccups.len());
    result.fact("hiccup_p999_ns", hiccups.value_at_quantile(0.999));
    result.fact("hiccup_max_ns", hiccups.max());
    result.metric("hiccup", &hiccups, "ns")?;

    let mut per_cpu = Map::new();
    for (shares, outcome) in whole.per_cpu.iter().zip(&m.outcomes) {
        let mut entry = shares_json(shares);
        entry.insert("hiccups".into(), outcome.hiccups.len().into());
        entry.insert(
            "hiccup_p999_ns".into(),
            outcome.hiccups.value_at_quantile(0.999).into(),
        );
        entry.insert("hiccup_max_ns".into(), outcome.hiccups.max().into());
        entry.insert("loop_step_ns".into(), outcome.min_step_ns.into());
        entry.insert("clock_reads".into(), outcome.iterations.into());
        entry.insert("threshold_ns".into(), outcome.threshold_ns.into());
        per_cpu.insert(format!("cpu{}", outcome.cpu), Value::Object(entry));
    }
    result.fact("per_cpu", Value::Object(per_cpu));

    let counter = StealCounter::detect(last.stat.total.steal);
    result.fact("steal_counter", counter.label());
    if let Some(w) = counter.warning() {
        result.warn(w);
    }
    let limit = m.cgroup.as_ref().and_then(|c| c.limit());
    result.fact(
        "cgroup_cpu_limit",
        limit.as_ref().map(|l| {
            json!({ "cpus": round(l.cpus()), "quota_us": l.quota_us, "period_us": l.period_us,
                    "cgroup": l.dir.display().to_string() })
        }),
    );

    add_series(
        result,
        plan,
        m,
        limit.is_some() || all.throttled_pct.unwrap_or(0.0) > 0.0,
    );
    cross_check(result, &all, limit.as_ref().map(|l| l.cpus()));
    judge(
        result,
        round(all.steal_pct),
        round(all.unexplained_pct),
        &counter,
        &ctx.profile,
    );
    Ok(())
}

fn shares_json(s: &Shares) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("steal_pct".into(), round(s.steal_pct).into());
    m.insert("lost_pct".into(), round(s.lost_pct).into());
    m.insert("guest_wait_pct".into(), s.guest_wait_pct.map(round).into());
    m.insert("throttled_pct".into(), s.throttled_pct.map(round).into());
    m.insert("unexplained_pct".into(), round(s.unexplained_pct).into());
    m.insert("irq_pct".into(), round(s.irq_pct).into());
    m.insert("preemptions".into(), s.preemptions.into());
    m
}

/// Series keys `pct/<share>`: the reports draw one group on one timeline,
/// so steal, lost time and guest wait can be read against each other.
fn add_series(result: &mut ProbeResult, plan: &Plan, m: &Measurement, with_throttled: bool) {
    let Some(first) = m.samples.first() else {
        return;
    };
    let mut steal = Vec::new();
    let mut lost = Vec::new();
    let mut guest = Vec::new();
    let mut throttled = Vec::new();
    for pair in m.samples.windows(2) {
        let w = window(&pair[0], &pair[1], &plan.cpus);
        let x = round(pair[1].at.saturating_duration_since(first.at).as_secs_f64());
        steal.push((x, round(w.overall.steal_pct)));
        lost.push((x, round(w.overall.lost_pct)));
        if let Some(g) = w.overall.guest_wait_pct {
            guest.push((x, round(g)));
        }
        if let Some(t) = w.overall.throttled_pct {
            throttled.push((x, round(t)));
        }
    }
    result.series.insert("pct/steal".into(), steal);
    result.series.insert("pct/lost".into(), lost);
    if !guest.is_empty() {
        result.series.insert("pct/guest_wait".into(), guest);
    }
    if with_throttled && !throttled.is_empty() {
        result.series.insert("pct/throttled".into(), throttled);
    }
}

/// Says what the signals together mean when they disagree or when the
/// machine itself, not the host, is taking the time.
fn cross_check(result: &mut ProbeResult, all: &Shares, limit_cpus: Option<f64>) {
    let guest = all.guest_wait_pct.unwrap_or(0.0);
    let throttled = all.throttled_pct.unwrap_or(0.0);
    if all.guest_wait_pct.is_none() {
        result.warn(
            "the probe threads' schedstat is unreadable or empty (kernel without \
             CONFIG_SCHED_INFO?): time lost to other tasks in this machine cannot be told \
             apart from time taken outside it",
        );
    }
    if all.unexplained_pct >= UNEXPLAINED_MIN_POINTS
        && all.unexplained_pct >= UNEXPLAINED_MIN_FRACTION * all.lost_pct
    {
        result.warn(format!(
            "time is taken that the hypervisor does not report as steal: the measured CPUs \
             lost {:.1} % of wall time, of which steal explains {:.1} %, other tasks in this \
             machine {:.1} % and cgroup throttling {:.1} %; the other {:.1} % went to \
             something else (host preemption without a steal clock, interrupts, SMIs; \
             interrupt handling on these CPUs: {:.1} %)",
            all.lost_pct, all.steal_pct, guest, throttled, all.unexplained_pct, all.irq_pct
        ));
    }
    if guest >= GUEST_WAIT_WARN_PCT {
        result.warn(format!(
            "other tasks in this machine took {guest:.1} % of the measured CPUs (run-queue \
             wait of the probe threads): that time is this machine's own load, not steal"
        ));
    }
    if throttled >= THROTTLED_WARN_PCT {
        let limit = limit_cpus.map_or(String::new(), |c| format!(" (limited to {c:.2} CPUs)"));
        result.warn(format!(
            "the probe's cgroup CPU quota{limit} throttled it {throttled:.1} % of the time: \
             lost time there is the quota, not steal"
        ));
    }
}

/// The `steal.pct` verdict from the whole measurement's shares.
pub(super) fn judge(
    result: &mut ProbeResult,
    steal_pct: f64,
    unexplained_pct: f64,
    counter: &StealCounter,
    profile: &Profile,
) {
    let verdict = if counter.trusted() {
        profile.judge(CHECK, steal_pct)
    } else {
        // Without a believable counter, lost time that no in-machine cause
        // explains is the best estimate of what the host takes.
        let observed = steal_pct.max(unexplained_pct);
        let mut v = profile.judge(CHECK, observed);
        v.note = format!(
            "{}{}steal counter {}: judged on lost time not explained by other tasks or \
             throttling",
            v.note,
            if v.note.is_empty() { "" } else { "; " },
            counter.label()
        );
        v
    };
    result.verdicts.push(verdict);
}

/// Three decimals: enough for percentages and seconds, short in JSON.
pub(super) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
