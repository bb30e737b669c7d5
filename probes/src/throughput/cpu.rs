//! CPU cost of moving bytes, from the kernel's own accounting: this
//! process's user and system time (getrusage) and the machine's softirq,
//! steal and guest time (/proc/stat, where receive processing and a
//! hypervisor's theft are counted, not charged to any process).

// getrusage has no std wrapper.
#![allow(unsafe_code)]

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// USER_HZ: /proc/stat's tick, 100 on every Linux architecture's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the counters.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    at: Instant,
    user_s: f64,
    system_s: f64,
    machine: MachineTicks,
}

/// The aggregate `cpu` line's columns this module uses, in ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MachineTicks {
    softirq: u64,
    steal: u64,
    guest: u64,
    total: u64,
}

/// CPU seconds spent between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuCost {
    pub wall_s: f64,
    /// This process.
    pub user_s: f64,
    pub system_s: f64,
    /// The whole machine (all CPUs): packet processing outside any process.
    pub softirq_s: f64,
    /// The whole machine: time a hypervisor gave to someone else.
    pub steal_s: f64,
    /// The whole machine: time spent running guests.
    pub guest_s: f64,
    /// The whole machine's CPU seconds in the window (CPUs × wall time).
    pub machine_s: f64,
}

impl CpuCost {
    /// The seconds charged to moving the bytes: user + system + softirq.
    pub fn charged_s(&self) -> f64 {
        self.user_s + self.system_s + self.softirq_s
    }

    /// Steal as a share of the machine's time in the window, in percent.
    pub fn steal_pct(&self) -> f64 {
        share(self.steal_s, self.machine_s)
    }

    /// Sums costs of windows that did not overlap.
    pub fn add(&mut self, other: &CpuCost) {
        self.wall_s += other.wall_s;
        self.user_s += other.user_s;
        self.system_s += other.system_s;
        self.softirq_s += other.softirq_s;
        self.steal_s += other.steal_s;
        self.guest_s += other.guest_s;
        self.machine_s += other.machine_s;
    }
}

fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part * 100.0 / whole
    } else {
        0.0
    }
}

impl CpuSample {
    /// Reads the counters now. A machine without /proc/stat reads zero
    /// machine time, which every share then reports as 0.
    pub fn now() -> CpuSample {
        let (user_s, system_s) = process_times();
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse_machine(&text))
            .unwrap_or_default();
        CpuSample {
            at: Instant::now(),
            user_s,
            system_s,
            machine,
        }
    }

    /// What was spent since `earlier`.
    pub fn since(&self, earlier: &CpuSample) -> CpuCost {
        let ticks = |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_SECOND;
        CpuCost {
            wall_s: self.at.saturating_duration_since(earlier.at).as_secs_f64(),
            user_s: (self.user_s - earlier.user_s).max(0.0),
            system_s: (self.system_s - earlier.system_s).max(0.0),
            softirq_s: ticks(self.machine.softirq, earlier.machine.softirq),
            steal_s: ticks(self.machine.steal, earlier.machine.steal),
            guest_s: ticks(self.machine.guest, earlier.machine.guest),
            machine_s: ticks(self.machine.total, earlier.machine.total),
        }
    }
}

/// This process's user and system seconds, every thread included.
fn process_times() -> (f64, f64) {
    // SAFETY: an all-zero rusage is valid; getrusage fills it for SELF.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage this frame owns.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal
/// guest guest_nice. Guest time is already inside user, so the total leaves
/// it out.
fn parse_machine(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineTicks {
        softirq: at(6),
        steal: at(7),
        guest: at(8),
        total: (0..8).map(at).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_line_gives_softirq_steal_guest_and_total() {
        let stat = "cpu  100 5 50 800 10 1 20 7 3 0\ncpu0 1 1 1 1 1 1 1 1 1 1\nintr 5\n";
        let m = parse_machine(stat).unwrap();
        assert_eq!(
            m,
            MachineTicks {
                softirq: 20,
                steal: 7,
                guest: 3,
                total: 993
            }
        );
        assert_eq!(parse_machine("cpu  1 2 3 4\n").unwrap().total, 10);
        assert!(parse_machine("intr 5\n").is_none());
    }

    #[test]
    fn spinning_shows_up_as_user_time() {
        let before = CpuSample::now();
        let until = Instant::now() + std::time::Duration::from_millis(200);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let cost = CpuSample::now().since(&before);
        assert!(cost.user_s + cost.system_s > 0.05, "{cost:?}");
        assert!(cost.wall_s >= 0.2);
    }
}
