//! Splits the time the measured CPUs were taken from the probe, between two
//! samples: steal the hypervisor reports (/proc/stat), run-queue wait behind
//! other tasks in this machine (guest wait), throttling by the probe's own
//! cgroup quota, and whatever the hiccup detector lost beyond those.

use super::counters::{pct, CpuTimes};
use super::measure::Sample;

/// Shares of wall time, in percent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shares {
    /// Steal the hypervisor reports for these CPUs (/proc/stat).
    pub steal_pct: f64,
    /// Gaps the hiccup detector saw.
    pub lost_pct: f64,
    /// Run-queue wait minus cgroup throttling: other tasks of this machine.
    /// None when schedstat could not be read.
    pub guest_wait_pct: Option<f64>,
    /// Run-queue wait spent throttled by the cgroup's CPU quota.
    pub throttled_pct: Option<f64>,
    /// Lost time that neither steal, guest wait nor throttling explains
    /// (interrupts, SMIs, steal the hypervisor does not report).
    pub unexplained_pct: f64,
    /// Interrupt and softirq handling on these CPUs (/proc/stat). Not part
    /// of the explained sum: long handlers are already lost time, short ones
    /// (below the threshold) are invisible to the detector.
    pub irq_pct: f64,
    /// Preemptions of the probe threads (nonvoluntary context switches).
    pub preemptions: Option<u64>,
}

/// The window between two samples, overall and per measured CPU (in the
/// order of `cpus`, which is also the workers' order).
pub struct Window {
    pub seconds: f64,
    pub overall: Shares,
    pub per_cpu: Vec<Shares>,
}

pub fn window(a: &Sample, b: &Sample, cpus: &[usize]) -> Window {
    let wall_ns = b.at.saturating_duration_since(a.at).as_nanos() as u64;
    let n = cpus.len() as u64;
    let lost: Vec<u64> = (0..cpus.len())
        .map(|i| delta(&a.lost_ns, &b.lost_ns, i))
        .collect();
    let sched: Option<Vec<_>> = match (&a.threads, &b.threads) {
        (Some(x), Some(y)) => Some(x.iter().zip(y).map(|(x, y)| y.delta(x)).collect()),
        _ => None,
    };
    let run_delay_total: u64 = sched
        .as_ref()
        .map_or(0, |s| s.iter().map(|d| d.run_delay_ns).sum());
    // The cgroup's throttled time also counts CPUs the probe does not
    // measure and overlapping nested limits: it can only explain as much
    // run-queue wait as there was.
    let throttled_total = match (a.throttled_ns, b.throttled_ns) {
        (Some(x), Some(y)) => y.saturating_sub(x).min(run_delay_total),
        _ => 0,
    };
    let throttled_fraction = if run_delay_total == 0 {
        0.0
    } else {
        throttled_total as f64 / run_delay_total as f64
    };

    let shares =
        |times: CpuTimes, lost_ns: u64, wall_ns: u64, run_delay_ns: Option<u64>, preempt| {
            let steal_pct = times.steal_pct();
            let lost_pct = pct(lost_ns, wall_ns);
            let throttled_pct = run_delay_ns.map(|d| pct(d, wall_ns) * throttled_fraction);
            let guest_wait_pct = run_delay_ns.map(|d| pct(d, wall_ns) * (1.0 - throttled_fraction));
            let explained =
                steal_pct + guest_wait_pct.unwrap_or(0.0) + throttled_pct.unwrap_or(0.0);
            Shares {
                steal_pct,
                lost_pct,
                guest_wait_pct,
                throttled_pct,
                unexplained_pct: (lost_pct - explained).max(0.0),
                irq_pct: times.irq_pct(),
                preemptions: preempt,
            }
        };

    let per_cpu = cpus
        .iter()
        .enumerate()
        .map(|(i, &cpu)| {
            let times = b.stat.delta_of(&a.stat, &[cpu]);
            let s = sched.as_ref().map(|s| s[i]);
            shares(
                times,
                lost[i],
                wall_ns,
                s.map(|s| s.run_delay_ns),
                s.map(|s| s.nonvoluntary_switches),
            )
        })
        .collect();
    let overall = shares(
        b.stat.delta_of(&a.stat, cpus),
        lost.iter().sum(),
        wall_ns * n,
        sched.as_ref().map(|_| run_delay_total),
        sched
            .as_ref()
            .map(|s| s.iter().map(|d| d.nonvoluntary_switches).sum()),
    );
    Window {
        seconds: wall_ns as f64 / 1e9,
        overall,
        per_cpu,
    }
}

fn delta(a: &[u64], b: &[u64], i: usize) -> u64 {
    match (a.get(i), b.get(i)) {
        (Some(x), Some(y)) => y.saturating_sub(*x),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steal::counters::StatSnapshot;
    use crate::steal::schedstat::ThreadSched;
    use std::time::{Duration, Instant};

    fn sample(
        at: Instant,
        stat: &str,
        run_delay: [u64; 2],
        lost: [u64; 2],
        throttled: u64,
    ) -> Sample {
        Sample {
            at,
            stat: StatSnapshot::parse(stat).unwrap(),
            threads: Some(
                run_delay
                    .iter()
                    .map(|&d| ThreadSched {
                        exec_ns: 0,
                        run_delay_ns: d,
                        nonvoluntary_switches: d / 1_000_000,
                    })
                    .collect(),
            ),
            lost_ns: lost.to_vec(),
            throttled_ns: Some(throttled),
        }
    }

    #[test]
    fn splits_run_queue_wait_into_throttling_and_other_tasks() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let a = sample(
            t0,
            "cpu  0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0\n",
            [0, 0],
            [0, 0],
            0,
        );
        // cpu0: 10 % steal, 500 ms waiting of which 300 ms throttled;
        // cpu1: 100 ms waiting, 5 % softirq; lost 620 ms and 100 ms.
        let b = sample(
            t1,
            "cpu  185 0 0 0 0 0 5 10\ncpu0 90 0 0 0 0 0 0 10\ncpu1 95 0 0 0 0 0 5\n",
            [500_000_000, 100_000_000],
            [620_000_000, 100_000_000],
            300_000_000,
        );
        let w = window(&a, &b, &[0, 1]);
        assert!((w.seconds - 1.0).abs() < 1e-9);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-6;
        let c0 = w.per_cpu[0];
        assert!(close(c0.steal_pct, 10.0));
        assert!(close(c0.lost_pct, 62.0));
        // 300 ms of 600 ms total wait is throttling: half of each CPU's wait.
        assert!(close(c0.throttled_pct.unwrap(), 25.0));
        assert!(close(c0.guest_wait_pct.unwrap(), 25.0));
        assert!(close(c0.unexplained_pct, 2.0));
        assert_eq!(c0.preemptions, Some(500));
        assert!(close(w.per_cpu[1].irq_pct, 5.0) && close(c0.irq_pct, 0.0));
        let all = w.overall;
        assert!(close(all.steal_pct, 5.0));
        assert!(close(all.lost_pct, 36.0));
        assert!(close(all.guest_wait_pct.unwrap(), 15.0));
        assert!(close(all.throttled_pct.unwrap(), 15.0));
        assert!(close(all.unexplained_pct, 1.0));
        assert!(close(all.irq_pct, 2.5));
    }

    #[test]
    fn throttling_cannot_exceed_the_wait_and_missing_schedstat_is_none() {
        let t0 = Instant::now();
        let stat = "cpu  0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0\n";
        let a = sample(t0, stat, [0, 0], [0, 0], 0);
        let mut b = sample(
            t0 + Duration::from_secs(1),
            stat,
            [100_000_000, 0],
            [0, 0],
            900_000_000,
        );
        let w = window(&a, &b, &[0, 1]);
        assert!((w.overall.throttled_pct.unwrap() - 5.0).abs() < 1e-6);
        assert_eq!(w.overall.guest_wait_pct, Some(0.0));
        b.threads = None;
        let w = window(&a, &b, &[0, 1]);
        assert_eq!(w.overall.guest_wait_pct, None);
        assert_eq!(w.per_cpu[1].throttled_pct, None);
    }
}
