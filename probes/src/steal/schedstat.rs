//! The probe threads' own scheduler statistics: how long each waited on its
//! run queue while runnable (schedstat's 2nd field, kept by CONFIG_SCHED_INFO
//! even without CONFIG_SCHEDSTATS) and how often it was preempted.

use std::path::PathBuf;

/// One reading for one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSched {
    /// Time spent on the CPU, ns.
    pub exec_ns: u64,
    /// Time spent runnable but waiting for the CPU (other tasks, or the
    /// thread's cgroup being throttled), ns.
    pub run_delay_ns: u64,
    /// Times the thread was preempted rather than blocking by itself.
    pub nonvoluntary_switches: u64,
}

impl ThreadSched {
    pub fn delta(&self, earlier: &ThreadSched) -> ThreadSched {
        ThreadSched {
            exec_ns: self.exec_ns.saturating_sub(earlier.exec_ns),
            run_delay_ns: self.run_delay_ns.saturating_sub(earlier.run_delay_ns),
            nonvoluntary_switches: self
                .nonvoluntary_switches
                .saturating_sub(earlier.nonvoluntary_switches),
        }
    }
}

/// `exec_ns run_delay_ns timeslices` from /proc/<pid>/task/<tid>/schedstat.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let exec = fields.next()?.ok()?;
    let delay = fields.next()?.ok()?;
    Some((exec, delay))
}

/// `nonvoluntary_ctxt_switches:` from a task's status file.
pub fn parse_nonvoluntary(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

fn task_dir(tid: libc::pid_t) -> PathBuf {
    PathBuf::from(format!("/proc/self/task/{tid}"))
}

/// Reads one probe thread's statistics.
pub fn read_thread(tid: libc::pid_t) -> std::io::Result<ThreadSched> {
    let dir = task_dir(tid);
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected {what} format"),
        )
    };
    let schedstat = std::fs::read_to_string(dir.join("schedstat"))?;
    let (exec_ns, run_delay_ns) = parse_schedstat(&schedstat).ok_or_else(|| bad("schedstat"))?;
    let status = std::fs::read_to_string(dir.join("status"))?;
    let nonvoluntary_switches = parse_nonvoluntary(&status).ok_or_else(|| bad("status"))?;
    Ok(ThreadSched {
        exec_ns,
        run_delay_ns,
        nonvoluntary_switches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat_and_status() {
        assert_eq!(
            parse_schedstat("1440862784 1008371593 268\n"),
            Some((1_440_862_784, 1_008_371_593))
        );
        assert_eq!(parse_schedstat("12\n"), None);
        assert_eq!(parse_schedstat("a b c"), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t267\n";
        assert_eq!(parse_nonvoluntary(status), Some(267));
        assert_eq!(parse_nonvoluntary("Name: x\n"), None);
    }

    #[test]
    fn this_kernel_keeps_run_delay_for_threads() {
        // CONFIG_SCHED_INFO keeps exec time and run delay; a busy thread
        // must show exec time, or attribution cannot work here.
        let tid = super::super::affinity::current_tid();
        let begin = std::time::Instant::now();
        while begin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::spin_loop();
        }
        let s = read_thread(tid).unwrap();
        assert!(s.exec_ns > 0, "{s:?}");
    }
}
