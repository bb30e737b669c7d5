//! The probe's own CPU cgroup: its CFS bandwidth limit and how long it was
//! throttled. A throttled thread stays runnable, so its run-queue wait
//! includes throttled time; this separates a quota from other tasks.

use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The probe's cpu cgroup directory and its ancestors up to the mount root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuCgroup {
    pub version: CgroupVersion,
    /// Own directory first, then each parent up to the hierarchy root.
    pub dirs: Vec<PathBuf>,
}

/// The tightest CPU bandwidth limit on the way to the root.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
    pub dir: PathBuf,
}

impl CpuLimit {
    /// The limit in CPUs (0.3 = 30 % of one CPU).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us.max(1) as f64
    }
}

struct CgroupMount {
    version: CgroupVersion,
    root: String,
    mount_point: PathBuf,
}

/// cgroup mounts carrying the cpu controller (v1) or the unified hierarchy
/// (v2), from /proc/self/mountinfo text.
fn cpu_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        let (Some(root), Some(mount_point), Some(fs_type)) =
            (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let version = match *fs_type {
            "cgroup2" => CgroupVersion::V2,
            "cgroup"
                if right
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "cpu")) =>
            {
                CgroupVersion::V1
            }
            _ => continue,
        };
        mounts.push(CgroupMount {
            version,
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
        });
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Locates the cpu cgroup from /proc/self/cgroup and mountinfo text. The v1
/// cpu controller wins when both exist (hybrid systems keep it in v1).
pub fn locate(proc_cgroup: &str, mountinfo: &str) -> Option<CpuCgroup> {
    let mounts = cpu_mounts(mountinfo);
    let mut v1_path = None;
    let mut v2_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            v1_path = Some(path.to_string());
        }
    }
    let (version, path) = match (v1_path, v2_path) {
        (Some(p), _) => (CgroupVersion::V1, p),
        (None, Some(p)) => (CgroupVersion::V2, p),
        (None, None) => return None,
    };
    // Several mounts of one hierarchy: pick the one whose root contains us.
    let mount = mounts
        .iter()
        .filter(|m| m.version == version && within(&path, &m.root))
        .max_by_key(|m| m.root.len())?;
    let relative = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or("")
        .trim_start_matches('/');
    let own = if relative.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(relative)
    };
    let mut dirs = vec![own.clone()];
    let mut current = own.as_path();
    while current != mount.mount_point {
        match current.parent() {
            Some(parent) => {
                dirs.push(parent.to_path_buf());
                current = parent;
            }
            None => break,
        }
    }
    Some(CpuCgroup { version, dirs })
}

fn within(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The probe's own cpu cgroup, or None when cgroups are not mounted.
pub fn own() -> Option<CpuCgroup> {
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    locate(&proc_cgroup, &mountinfo)
}

impl CpuCgroup {
    /// Throttled time summed over this cgroup and its ancestors, ns. Nested
    /// limits can overlap, so the caller caps the total at the run-queue wait
    /// it explains.
    pub fn throttled_ns(&self) -> u64 {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cpu.stat")).ok())
            .filter_map(|text| throttled_from_cpu_stat(&text, self.version))
            .sum()
    }

    /// The tightest bandwidth limit on the way to the root, if any.
    pub fn limit(&self) -> Option<CpuLimit> {
        self.dirs
            .iter()
            .filter_map(|d| read_limit(d, self.version))
            .min_by(|a, b| a.cpus().total_cmp(&b.cpus()))
    }
}

pub fn throttled_from_cpu_stat(text: &str, version: CgroupVersion) -> Option<u64> {
    let (key, scale) = match version {
        CgroupVersion::V1 => ("throttled_time", 1),
        CgroupVersion::V2 => ("throttled_usec", 1_000),
    };
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse::<u64>().ok().map(|v| v * scale))?
    })
}

fn read_limit(dir: &Path, version: CgroupVersion) -> Option<CpuLimit> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let (quota, period) = match version {
        CgroupVersion::V1 => {
            let quota: i64 = read("cpu.cfs_quota_us")?.trim().parse().ok()?;
            let period: u64 = read("cpu.cfs_period_us")?.trim().parse().ok()?;
            (u64::try_from(quota).ok()?, period)
        }
        CgroupVersion::V2 => parse_cpu_max(&read("cpu.max")?)?,
    };
    Some(CpuLimit {
        quota_us: quota,
        period_us: period,
        dir: dir.to_path_buf(),
    })
}

/// `cpu.max`: "max 100000" (no limit) or "30000 100000".
pub fn parse_cpu_max(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?.parse().ok()?;
    let period = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    Some((quota, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
24 1 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
30 24 0:28 / /sys/fs/cgroup/cpu rw,nosuid shared:9 - cgroup cgroup rw,cpu
31 24 0:29 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct
";

    #[test]
    fn v1_cpu_controller_wins_on_a_hybrid_system() {
        let cg = locate("2:cpuacct:/\n1:cpu:/a/b\n0::/\n", HYBRID_MOUNTINFO).unwrap();
        assert_eq!(cg.version, CgroupVersion::V1);
        assert_eq!(
            cg.dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu/a/b"),
                PathBuf::from("/sys/fs/cgroup/cpu/a"),
                PathBuf::from("/sys/fs/cgroup/cpu"),
            ]
        );
    }

    #[test]
    fn unified_hierarchy_and_container_roots() {
        let mi = "40 1 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cg = locate("0::/kubepods/pod1/ctr\n", mi).unwrap();
        assert_eq!(cg.version, CgroupVersion::V2);
        assert_eq!(
            cg.dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/ctr"),
                PathBuf::from("/sys/fs/cgroup")
            ]
        );
        let combined =
            "30 24 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let cg = locate("3:cpu,cpuacct:/x\n", combined).unwrap();
        assert_eq!(cg.dirs[0], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"));
        assert!(locate("1:memory:/\n", HYBRID_MOUNTINFO).is_none());
    }

    #[test]
    fn cpu_stat_and_cpu_max() {
        let v1 = "nr_periods 24\nnr_throttled 23\nthrottled_time 1599572993\n";
        assert_eq!(
            throttled_from_cpu_stat(v1, CgroupVersion::V1),
            Some(1_599_572_993)
        );
        let v2 = "usage_usec 5\nnr_throttled 3\nthrottled_usec 700\n";
        assert_eq!(
            throttled_from_cpu_stat(v2, CgroupVersion::V2),
            Some(700_000)
        );
        assert_eq!(throttled_from_cpu_stat(v2, CgroupVersion::V1), None);
        assert_eq!(parse_cpu_max("30000 100000\n"), Some((30_000, 100_000)));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
    }

    #[test]
    fn this_process_has_a_readable_cgroup_or_none() {
        if let Some(cg) = own() {
            assert!(cg.dirs.iter().all(|d| d.is_dir()), "{cg:?}");
        }
    }
}
