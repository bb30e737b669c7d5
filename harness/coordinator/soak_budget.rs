//! The disk a fleet soak will take in its bundle, checked before it
//! starts: every node's interval log grows by a fixed part per interval
//! (facts, steal, fsync) and a part per rtt target (each peer on each
//! path), so a full mesh grows with nodes times peers. A soak that would
//! not fit in the free space of its `--out` is refused (exit 2) rather than
//! failing hours in. The agents keep nothing on disk but the fsync slice's
//! WAL files, removed after each slice; what they hold in memory is the
//! log nobody fetched yet, which ends with the lease.

use std::path::Path;

use anyhow::{bail, Result};
use infraqual_probes::system::dirfd::DirHandle;

use super::plan::Plan;
use super::soak_plan::SoakPlan;

/// Per node and interval at the default schedule (5 m, 30 s slices), the
/// larger of two runs of scripts/soak-fleet-disk (3 nodes at load 1.6 ..
/// 5.2: medians; 4 nodes during a test suite, load 3.3 .. 4.0: node
/// means), since a noisier machine makes wider histograms: the facts line
/// (240 B) and steal's histograms (2,572 B, 1,305 .. 4,353; 5,016 ..
/// 5,065).
const FIXED_BYTES: u64 = 5_300;
/// The fsync slice's histograms, with `dir` (3,402 B, 3,062 .. 3,456;
/// 4,002 .. 4,103).
const FSYNC_BYTES: u64 = 4_100;
/// One rtt target (a peer on a path): its UDP and TCP request/response
/// histograms (753 B, 725 .. 785 with two targets; 651 .. 694 with three,
/// as each has fewer samples the more there are).
const TARGET_BYTES: u64 = 800;
/// The whole bundle at the end against its logs: a day of those nodes'
/// logs made a bundle 4.4 times (3 nodes: 6.8 MB of logs, 30 MB) and 3.8
/// times (4 nodes: 13 MB, 49 MB) as large, mostly run.json (every window
/// is a round) and plots.
const BUNDLE_PER_LOG_BYTE: f64 = 4.5;

/// What the soak's interval logs will take in all, in bytes.
pub fn estimate(plan: &Plan, soak: &SoakPlan) -> u64 {
    let intervals = (soak.total.as_secs() / soak.every.as_secs().max(1)).max(1);
    let per_node: u64 = plan
        .agents
        .iter()
        .map(|agent| {
            let targets: u64 = plan
                .agents
                .iter()
                .filter(|other| other.name != agent.name)
                .map(|other| {
                    soak.paths
                        .iter()
                        .filter(|p| other.addresses.contains_key(*p))
                        .count() as u64
                })
                .sum();
            let fsync = if soak.dir.is_some() { FSYNC_BYTES } else { 0 };
            FIXED_BYTES + fsync + targets * TARGET_BYTES
        })
        .sum();
    per_node * intervals
}

/// Refuses a soak whose bundle (its logs and what is made of them at the
/// end) would not fit in the free space where it goes.
pub fn check(out: &Path, plan: &Plan, soak: &SoakPlan) -> Result<()> {
    let logs = estimate(plan, soak);
    let needed = (logs as f64 * BUNDLE_PER_LOG_BYTE) as u64;
    let Some(free) = free_bytes(out) else {
        return Ok(());
    };
    if needed > free {
        bail!(
            "--out {}: this soak's bundle needs about {} ({} of interval logs; {} nodes, {} intervals), the filesystem has {} free; soak fewer nodes, fewer paths or longer intervals, or use another --out",
            out.display(),
            human(needed),
            human(logs),
            plan.agents.len(),
            soak.total.as_secs() / soak.every.as_secs().max(1),
            human(free)
        );
    }
    Ok(())
}

/// `2.6 TB`, `340 MB`: sizes told to a person.
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000_000 => format!("{:.0} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0} MB", b / 1e6),
        1_000_000_000..1_000_000_000_000 => format!("{:.1} GB", b / 1e9),
        _ => format!("{:.1} TB", b / 1e12),
    }
}

/// Free bytes for an unprivileged writer on the filesystem of `path` (or
/// of its nearest existing ancestor); None when that cannot be told.
fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    DirHandle::open(existing).ok()?.free_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_told_in_the_unit_that_reads() {
        assert_eq!(human(7_500), "8 kB");
        assert_eq!(human(340_000_000), "340 MB");
        assert_eq!(human(2_640_000_000), "2.6 GB");
        assert_eq!(human(3_700_000_000_000), "3.7 TB");
    }

    #[test]
    fn free_space_is_read_from_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(&dir.path().join("runs/not/yet")).unwrap();
        assert!(free > 0);
    }
}
