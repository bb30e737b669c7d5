//! /proc/stat CPU time counters: parsing and the steal share between two
//! samples. Pure functions over text, so they are tested on fixtures.

use std::collections::BTreeMap;

/// One `cpu`/`cpuN` line of /proc/stat, in USER_HZ ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// All time the CPU existed. `guest` and `guest_nice` are already counted
    /// inside `user` and `nice`, so adding them would count them twice.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }

    /// Counters can only grow; a smaller value (CPU hot-unplugged and back)
    /// reads as zero progress rather than as a huge wrapped number.
    pub fn delta(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
            guest: self.guest.saturating_sub(earlier.guest),
            guest_nice: self.guest_nice.saturating_sub(earlier.guest_nice),
        }
    }

    /// Steal as a percentage of all time in this (delta) record; 0 when no
    /// tick elapsed.
    pub fn steal_pct(&self) -> f64 {
        pct(self.steal, self.total())
    }

    /// Interrupt and softirq handling as a percentage of all time. Handlers
    /// shorter than the hiccup threshold take time the detector cannot see.
    pub fn irq_pct(&self) -> f64 {
        pct(self.irq + self.softirq, self.total())
    }

    fn add(&mut self, other: &CpuTimes) {
        self.user += other.user;
        self.nice += other.nice;
        self.system += other.system;
        self.idle += other.idle;
        self.iowait += other.iowait;
        self.irq += other.irq;
        self.softirq += other.softirq;
        self.steal += other.steal;
        self.guest += other.guest;
        self.guest_nice += other.guest_nice;
    }
}

pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The CPU lines of one /proc/stat read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatSnapshot {
    /// The aggregate `cpu` line (all online CPUs).
    pub total: CpuTimes,
    pub per_cpu: BTreeMap<usize, CpuTimes>,
}

impl StatSnapshot {
    /// Parses the `cpu` lines; other lines are ignored. Old kernels print
    /// fewer columns (steal since 2.6.11, guest_nice since 2.6.33): missing
    /// columns read as zero. Returns None when there is no aggregate line.
    pub fn parse(text: &str) -> Option<StatSnapshot> {
        let mut snapshot = StatSnapshot::default();
        let mut saw_total = false;
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(label) = fields.next() else { continue };
            let Some(suffix) = label.strip_prefix("cpu") else {
                continue;
            };
            let mut values = [0u64; 10];
            for (slot, field) in values.iter_mut().zip(fields) {
                *slot = field.parse().ok()?;
            }
            let times = CpuTimes {
                user: values[0],
                nice: values[1],
                system: values[2],
                idle: values[3],
                iowait: values[4],
                irq: values[5],
                softirq: values[6],
                steal: values[7],
                guest: values[8],
                guest_nice: values[9],
            };
            if suffix.is_empty() {
                snapshot.total = times;
                saw_total = true;
            } else {
                snapshot.per_cpu.insert(suffix.parse().ok()?, times);
            }
        }
        saw_total.then_some(snapshot)
    }

    /// The sum of `cpus`' lines in `self` minus the same in `earlier`. A CPU
    /// missing from either sample (offline) contributes nothing.
    pub fn delta_of(&self, earlier: &StatSnapshot, cpus: &[usize]) -> CpuTimes {
        let mut sum = CpuTimes::default();
        for cpu in cpus {
            if let (Some(now), Some(before)) = (self.per_cpu.get(cpu), earlier.per_cpu.get(cpu)) {
                sum.add(&now.delta(before));
            }
        }
        sum
    }
}

/// Reads /proc/stat into a reused buffer (the sampler calls this every
/// interval).
pub fn read_proc_stat(buffer: &mut String) -> std::io::Result<StatSnapshot> {
    use std::io::Read;
    buffer.clear();
    std::fs::File::open("/proc/stat")?.read_to_string(buffer)?;
    StatSnapshot::parse(buffer).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no `cpu` line in /proc/stat",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
cpu  17785 0 5576 1135154 496 0 49 15 0 0
cpu0 8317 0 2017 569244 51 0 18 5 0 0
cpu1 9468 0 3559 565909 445 0 30 10 0 0
intr 294393 0 0 0
ctxt 1234
";
    // cpu0: 90 user ticks + 10 stolen; cpu1: 100 user ticks.
    const AFTER: &str = "\
cpu  17975 0 5576 1135154 496 0 49 25 0 0
cpu0 8407 0 2017 569244 51 0 18 15 0 0
cpu1 9568 0 3559 565909 445 0 30 10 0 0
intr 294500 0 0 0
";

    #[test]
    fn parses_total_and_per_cpu_lines() {
        let s = StatSnapshot::parse(BEFORE).unwrap();
        assert_eq!(s.per_cpu.len(), 2);
        assert_eq!(s.total.user, 17785);
        assert_eq!(s.total.steal, 15);
        assert_eq!(s.per_cpu[&1].iowait, 445);
        assert_eq!(s.per_cpu[&1].steal, 10);
    }

    #[test]
    fn steal_share_per_cpu_and_over_a_set() {
        let (a, b) = (
            StatSnapshot::parse(BEFORE).unwrap(),
            StatSnapshot::parse(AFTER).unwrap(),
        );
        assert_eq!(b.delta_of(&a, &[0]).steal_pct(), 10.0);
        assert_eq!(b.delta_of(&a, &[1]).steal_pct(), 0.0);
        assert_eq!(b.delta_of(&a, &[0, 1]).steal_pct(), 5.0);
        assert_eq!(b.total.delta(&a.total).steal_pct(), 5.0);
        // An unknown CPU contributes nothing instead of failing.
        assert_eq!(b.delta_of(&a, &[7]).total(), 0);
    }

    #[test]
    fn guest_time_is_not_counted_twice() {
        let t = CpuTimes {
            user: 50,
            guest: 40,
            idle: 50,
            ..Default::default()
        };
        assert_eq!(t.total(), 100);
    }

    #[test]
    fn short_old_kernel_lines_and_garbage() {
        let old = "cpu  10 0 10 80\ncpu0 10 0 10 80\n";
        let s = StatSnapshot::parse(old).unwrap();
        assert_eq!(s.total.total(), 100);
        assert_eq!(s.total.steal, 0);
        assert!(StatSnapshot::parse("intr 1 2 3\n").is_none());
        assert!(StatSnapshot::parse("cpu  1 x 3\n").is_none());
        let wrapped = CpuTimes {
            steal: 5,
            ..Default::default()
        }
        .delta(&CpuTimes {
            steal: 9,
            ..Default::default()
        });
        assert_eq!(wrapped.steal, 0);
    }

    #[test]
    fn reads_this_machines_proc_stat() {
        let mut buf = String::new();
        let s = read_proc_stat(&mut buf).unwrap();
        assert!(!s.per_cpu.is_empty());
        assert!(s.total.total() > 0);
    }
}
