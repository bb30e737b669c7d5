//! CPU lists (`0-3,6`, the taskset/cpuset syntax) and pinning threads to one
//! CPU with sched_setaffinity.

// CPU affinity, gettid and sched_getcpu have no std wrapper.
#![allow(unsafe_code)]

use std::collections::BTreeSet;

/// Highest CPU number a list may name; glibc's cpu_set_t holds 1024.
const MAX_CPUS: usize = 1024;

/// Parses `0-3,6` into sorted, distinct CPU numbers.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = BTreeSet::new();
    let text = text.trim();
    if text.is_empty() {
        return Err("empty CPU list (expected e.g. 0-3,6)".into());
    }
    for part in text.split(',') {
        let part = part.trim();
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n < MAX_CPUS)
                .ok_or_else(|| format!("`{s}` in CPU list `{text}` is not a CPU number"))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(format!(
                        "range `{part}` in CPU list `{text}` runs backwards"
                    ));
                }
                cpus.extend(lo..=hi);
            }
            None => {
                cpus.insert(number(part)?);
            }
        }
    }
    Ok(cpus.into_iter().collect())
}

/// Formats CPU numbers back into the compact list form.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The CPUs this process may run on (its affinity mask, which cpusets and
/// taskset narrow).
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set, and the
    // kernel writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..MAX_CPUS)
            .filter(|c| libc::CPU_ISSET(*c, &set))
            .collect())
    }
}

/// Pins thread or process `tid` (0: the calling thread) to `cpu` alone.
pub fn pin_to_cpu(tid: libc::pid_t, cpu: usize) -> std::io::Result<()> {
    if cpu >= MAX_CPUS {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: as above; CPU_SET is bounds-checked by the guard above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The calling thread's kernel id, for /proc/self/task/<tid>.
pub fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// The CPU the calling thread is running on right now.
#[cfg(test)]
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions; -1 means unsupported.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(parse_cpu_list("0-3,6"), Ok(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list(" 2, 1 ,1"), Ok(vec![1, 2]));
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(format_cpu_list(&[]), "");
        for bad in ["", "a", "3-1", "1,,2", "5000", "-1"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn pinning_a_thread_moves_it() {
        let allowed = allowed_cpus().unwrap();
        let target = *allowed.last().unwrap();
        std::thread::spawn(move || {
            pin_to_cpu(0, target).unwrap();
            assert_eq!(current_cpu(), Some(target));
            assert!(current_tid() > 0);
        })
        .join()
        .unwrap();
    }
}
