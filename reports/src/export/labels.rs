//! Human names for what run.json spells as keys: checks, metrics and the
//! facts a reader looks for first, each with its unit and what it means.
//! The raw keys stay in report.html's folded blocks for scripts and
//! people who want them.

use serde_json::Value;

use crate::format;

/// A fact shown in a probe's "key facts" table.
pub struct FactLabel {
    pub key: &'static str,
    pub label: &'static str,
    /// `ns`, `%`, `bytes`, `ms`, or "" for a count or text.
    pub unit: &'static str,
    pub meaning: &'static str,
}

const fn fact(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    meaning: &'static str,
) -> FactLabel {
    FactLabel {
        key,
        label,
        unit,
        meaning,
    }
}

const INVENTORY: &[FactLabel] = &[
    fact(
        "cpu_model",
        "CPU",
        "",
        "the processor the guest is told it has",
    ),
    fact("cpu_cores", "cores", "", "physical cores"),
    fact(
        "cpu_threads",
        "threads",
        "",
        "logical CPUs the kernel schedules on",
    ),
    fact("memory_bytes", "memory", "bytes", "RAM the kernel sees"),
    fact("kernel", "kernel", "", "running kernel release"),
    fact("os", "operating system", "", "the distribution"),
    fact(
        "hypervisor",
        "hypervisor",
        "",
        "what the machine runs on, from CPUID and DMI",
    ),
    fact(
        "container",
        "container",
        "",
        "the container runtime infraqual runs inside, if any",
    ),
    fact(
        "clocksource",
        "clock source",
        "",
        "tsc is cheap to read; others cost a trap per clock read",
    ),
    fact(
        "nf_conntrack_max",
        "conntrack table",
        "entries",
        "connections the node can track before it drops new ones",
    ),
    fact(
        "cgroup_version",
        "cgroup version",
        "",
        "v2 is what current Kubernetes expects",
    ),
];

const FSYNC: &[FactLabel] = &[
    fact(
        "mode",
        "method",
        "",
        "fio-etcd: fio's etcd recipe; etcd-wal: etcd's WAL write pattern",
    ),
    fact(
        "syncs",
        "syncs timed",
        "",
        "every fdatasync is in the histogram",
    ),
    fact(
        "syncs_per_sec",
        "syncs per second",
        "",
        "how many commits a second this disk can make back to back",
    ),
    fact(
        "rate_per_sec",
        "paced at (syncs per second)",
        "",
        "the steady sync rate asked for (not a capacity figure)",
    ),
    fact(
        "device",
        "device",
        "",
        "the block device behind the directory",
    ),
    fact("transport", "transport", "", "NVMe, SATA, virtio ..."),
    fact(
        "rotational",
        "rotational (the kernel's flag)",
        "",
        "a real spinning disk cannot carry etcd; virtual disks often claim yes",
    ),
    fact("fs_type", "file system", "", "of the directory under test"),
];

const STEAL: &[FactLabel] = &[
    fact(
        "steal_pct",
        "stolen by the hypervisor",
        "%",
        "CPU time the host gave to other guests while ours wanted it",
    ),
    fact(
        "lost_pct",
        "lost by busy threads",
        "%",
        "time pinned busy threads did not run, whatever the cause",
    ),
    fact(
        "guest_wait_pct",
        "waiting in our own run queue",
        "%",
        "lost to our own other tasks, not to the neighbour",
    ),
    fact(
        "throttled_pct",
        "throttled by the cgroup",
        "%",
        "lost to a CPU quota, not to the neighbour",
    ),
    fact(
        "hiccups",
        "hiccups",
        "",
        "gaps longer than the threshold the busy threads saw",
    ),
];

pub fn facts_for(probe: &str) -> &'static [FactLabel] {
    match probe {
        "inventory" => INVENTORY,
        "fsync" => FSYNC,
        "steal" => STEAL,
        _ => &[],
    }
}

/// A probe's note or warning with the fact keys it names replaced by their
/// labels (`nf_conntrack_max is 65536` reads `conntrack table is 65536`).
pub fn prose(text: &str) -> String {
    let mut out = text.to_string();
    for f in [INVENTORY, FSYNC, STEAL].into_iter().flatten() {
        if f.key.contains('_') {
            out = out.replace(f.key, f.label);
        }
    }
    out
}

/// A fact's value in its unit, in one line.
pub fn fact_value(v: &Value, unit: &str) -> String {
    match (v.as_f64(), unit) {
        (Some(b), "bytes") => bytes(b),
        (Some(x), "%") => format::value(x, "%"),
        (Some(x), u) if !u.is_empty() => format::value(x, u),
        _ => format::fact(v),
    }
}

/// `15.6 GiB`, `512 MiB`.
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} bytes")
    } else {
        format!("{} {}", format::three_significant(v), UNITS[i])
    }
}

/// A check as a reader names it: `etcd WAL fdatasync p99`.
pub fn check(check: &str) -> String {
    let known = match check {
        "fsync.fdatasync.p99" => Some("disk: fdatasync p99 (etcd WAL)"),
        "steal.pct" => Some("CPU stolen by the hypervisor"),
        "rtt.udp.p99" => Some("network: UDP round trip p99"),
        "rtt.loss.pct" => Some("network: UDP loss"),
        "mtu.blackhole" => Some("network: MTU black hole"),
        "inventory.nf_conntrack_max" => Some("conntrack table size"),
        _ => None,
    };
    if let Some(k) = known {
        return k.to_string();
    }
    if let Some(probe) = check.strip_suffix(".run") {
        return format!("{probe} could run here");
    }
    words(check)
}

/// A metric key as words: `a->b/native/tcp_rr` is `a → b native TCP
/// request/response`.
pub fn metric(key: &str) -> String {
    key.split('/')
        .map(|part| match part {
            "udp" => "UDP".to_string(),
            "tcp_rr" => "TCP request/response".to_string(),
            "tcp_connect" => "TCP connect".to_string(),
            other => words(other),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// snake_case and dots as spaced words, arrows as arrows.
pub fn words(key: &str) -> String {
    key.replace("->", " → ").replace(['_', '.'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_words() {
        assert_eq!(
            metric("a->b/overlay/tcp_rr"),
            "a → b overlay TCP request/response"
        );
        assert_eq!(check("services.run"), "services could run here");
        assert_eq!(check("steal.pct"), "CPU stolen by the hypervisor");
        assert_eq!(words("unexplained_pct"), "unexplained pct");
    }

    #[test]
    fn notes_name_facts_by_their_labels() {
        assert_eq!(
            prose("nf_conntrack_max is 65536: raise it"),
            "conntrack table is 65536: raise it"
        );
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(16.0 * 1024.0 * 1024.0 * 1024.0), "16.0 GiB");
        assert_eq!(bytes(512.0), "512 bytes");
    }

    #[test]
    fn every_labelled_fact_has_words() {
        for probe in ["inventory", "fsync", "steal"] {
            for f in facts_for(probe) {
                assert!(!f.label.contains('_') && !f.meaning.is_empty(), "{}", f.key);
            }
        }
    }
}
