//! Block devices from /sys: what a disk is (model, transport, rotational,
//! write cache, size) and which physical disks sit under a filesystem,
//! through partitions, device-mapper and md.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read_trimmed, read_u64};

/// How a disk is attached; NVMe vs SATA is what users compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Nvme,
    Sata,
    Scsi,
    Virtio,
    Usb,
    Mmc,
    Virtual,
    Unknown,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Scsi => "scsi",
            Transport::Virtio => "virtio",
            Transport::Usb => "usb",
            Transport::Mmc => "mmc",
            Transport::Virtual => "virtual",
            Transport::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockDevice {
    /// Kernel name, e.g. `nvme0n1`, `sda`, `vda`.
    pub name: String,
    pub model: Option<String>,
    pub transport: Transport,
    pub rotational: Option<bool>,
    /// `write back` (volatile cache) or `write through`.
    pub write_cache: Option<String>,
    pub size_bytes: Option<u64>,
}

/// Reads one whole-disk device from a /sys root (a test may point it at a
/// fixture tree).
pub fn describe(sys_block: &Path, name: &str) -> BlockDevice {
    let dir = sys_block.join(name);
    let model = read_trimmed(dir.join("device/model"))
        .or_else(|| read_trimmed(dir.join("device/name")))
        .or_else(|| read_trimmed(dir.join("serial")).map(|s| format!("serial {s}")));
    BlockDevice {
        name: name.to_string(),
        model,
        transport: transport_of(&dir, name),
        rotational: read_u64(dir.join("queue/rotational")).map(|v| v == 1),
        write_cache: read_trimmed(dir.join("queue/write_cache")),
        size_bytes: read_u64(dir.join("size")).map(|sectors| sectors * 512),
    }
}

fn transport_of(dir: &Path, name: &str) -> Transport {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let path = real.to_string_lossy();
    if name.starts_with("nvme") || path.contains("/nvme") {
        Transport::Nvme
    } else if name.starts_with("vd") || path.contains("/virtio") && !name.starts_with("sd") {
        Transport::Virtio
    } else if path.contains("/usb") {
        Transport::Usb
    } else if path.contains("/ata") {
        Transport::Sata
    } else if name.starts_with("mmcblk") {
        Transport::Mmc
    } else if name.starts_with("sd") || name.starts_with("sr") {
        Transport::Scsi
    } else if path.contains("/virtual/") {
        Transport::Virtual
    } else {
        Transport::Unknown
    }
}

/// Whole-disk devices worth reporting: not loop, ram, zram or partitions.
pub fn list(sys_block: &Path) -> Vec<BlockDevice> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "nbd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    names.iter().map(|n| describe(sys_block, n)).collect()
}

/// The whole disks under device `major:minor`: a partition resolves to its
/// disk, a dm or md device to the disks of its slaves, recursively.
pub fn disks_under(sys_root: &Path, major: u32, minor: u32) -> Vec<String> {
    let link = sys_root.join(format!("dev/block/{major}:{minor}"));
    let Ok(real) = std::fs::canonicalize(&link) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    resolve_disks(&real, 0, &mut out);
    out.sort();
    out.dedup();
    out
}

fn resolve_disks(dev_dir: &Path, depth: usize, out: &mut Vec<String>) {
    if depth > 8 {
        return; // dm stacks deeper than this are a loop, not a storage layout
    }
    let dir: PathBuf = if dev_dir.join("partition").exists() {
        match dev_dir.parent() {
            Some(parent) => parent.to_path_buf(),
            None => return,
        }
    } else {
        dev_dir.to_path_buf()
    };
    let slaves: Vec<PathBuf> = std::fs::read_dir(dir.join("slaves"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if slaves.is_empty() {
        if let Some(name) = dir.file_name() {
            out.push(name.to_string_lossy().into_owned());
        }
    } else {
        for slave in slaves {
            resolve_disks(&slave, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_disk_matches_sysfs() {
        let sys = Path::new("/sys/block");
        for d in list(sys) {
            let dir = sys.join(&d.name);
            assert_eq!(
                d.rotational,
                read_u64(dir.join("queue/rotational")).map(|v| v == 1)
            );
            assert_eq!(
                d.size_bytes,
                read_u64(dir.join("size")).map(|s| s * 512),
                "{}",
                d.name
            );
            assert!(!d.name.starts_with("loop"));
        }
    }

    #[test]
    fn root_filesystem_resolves_to_a_listed_disk_when_it_has_one() {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata("/").unwrap().dev();
        let disks = disks_under(Path::new("/sys"), libc::major(dev), libc::minor(dev));
        let listed: Vec<String> = list(Path::new("/sys/block"))
            .into_iter()
            .map(|d| d.name)
            .collect();
        for d in &disks {
            assert!(listed.contains(d), "{d} not in {listed:?}");
        }
    }

    #[test]
    fn transport_from_names() {
        let fake = Path::new("/nonexistent");
        assert_eq!(transport_of(fake, "nvme0n1"), Transport::Nvme);
        assert_eq!(transport_of(fake, "vda"), Transport::Virtio);
        assert_eq!(transport_of(fake, "sda"), Transport::Scsi);
        assert_eq!(transport_of(fake, "mmcblk0"), Transport::Mmc);
    }
}
