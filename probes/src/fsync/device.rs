//! Know the device: which filesystem and which physical disks carry the
//! directory, and whether its fsync reaches a disk at all.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::ProbeError;
use crate::result::ProbeResult;
use crate::system::block::{self, BlockDevice};
use crate::system::mounts::{self, MountEntry, VOLATILE_FS};

/// Pseudo filesystems that hold no files on any disk (beyond VOLATILE_FS).
const PSEUDO_FS: &[&str] = &[
    "devpts",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "mqueue",
    "efivarfs",
    "binfmt_misc",
    "autofs",
    "rpc_pipefs",
    "nsfs",
];

/// Block devices whose "disk" is RAM.
const RAM_DISKS: &[&str] = &["zram", "ram", "brd"];

/// Where the probe's files land.
#[derive(Clone, Debug)]
pub struct Storage {
    pub mount: MountEntry,
    pub disks: Vec<BlockDevice>,
    /// Why an fsync here proves nothing about a disk, if it does not.
    pub volatile: Option<String>,
}

/// Resolves `dir` (which must exist) to its mount and whole disks.
pub fn locate(dir: &Path) -> Result<Storage, ProbeError> {
    let mount = mounts::mount_of(dir)?;
    let names = disk_names(Path::new("/sys"), &mount, 0);
    let disks: Vec<BlockDevice> = names
        .iter()
        .map(|n| block::describe(Path::new("/sys/block"), n))
        .collect();
    let volatile = volatile_reason(&mount.fs_type, &names);
    Ok(Storage {
        mount,
        disks,
        volatile,
    })
}

/// The whole disks under a mount: from its device number, else from the
/// device node named as its source (btrfs reports an anonymous st_dev), else
/// for overlayfs from the filesystem holding its upper directory.
fn disk_names(sys_root: &Path, mount: &MountEntry, depth: usize) -> Vec<String> {
    let direct = block::disks_under(sys_root, mount.major, mount.minor);
    if !direct.is_empty() {
        return direct;
    }
    if mount.source.starts_with("/dev/") {
        if let Ok(meta) = std::fs::metadata(&mount.source) {
            let rdev = meta.rdev();
            if rdev != 0 {
                let names = block::disks_under(sys_root, libc::major(rdev), libc::minor(rdev));
                if !names.is_empty() {
                    return names;
                }
            }
        }
    }
    if mount.fs_type == "overlay" && depth == 0 {
        let upper = mount
            .options
            .split(',')
            .find_map(|o| o.strip_prefix("upperdir="));
        if let Some(upper) = upper {
            if let Ok(under) = mounts::mount_of(Path::new(upper)) {
                return disk_names(sys_root, &under, depth + 1);
            }
        }
    }
    Vec::new()
}

/// Why a filesystem of `fs_type` on `disks` is not a disk, if it is not.
/// FUSE and network filesystems are not refused: they may well reach a disk.
pub fn volatile_reason(fs_type: &str, disks: &[String]) -> Option<String> {
    if VOLATILE_FS.contains(&fs_type) {
        return Some(format!("it is on {fs_type}, which keeps files in memory"));
    }
    if PSEUDO_FS.contains(&fs_type) {
        return Some(format!("it is on {fs_type}, a pseudo filesystem"));
    }
    let ram: Vec<&str> = disks
        .iter()
        .map(String::as_str)
        .filter(|d| RAM_DISKS.iter().any(|p| d.starts_with(p)))
        .collect();
    if !disks.is_empty() && ram.len() == disks.len() {
        return Some(format!("its device {} is a RAM disk", ram.join(",")));
    }
    None
}

/// `facts.device`, `transport`, `rotational`, `write_cache`, `model`,
/// `fs_type`, `mount_options` and the per-disk detail.
pub fn add_facts(result: &mut ProbeResult, storage: &Storage) {
    let disks = &storage.disks;
    let joined = |f: &dyn Fn(&BlockDevice) -> Option<String>| -> Value {
        let values: Vec<String> = disks.iter().filter_map(f).collect();
        if values.is_empty() {
            Value::Null
        } else {
            Value::String(values.join(","))
        }
    };
    let common = |f: &dyn Fn(&BlockDevice) -> Option<String>| -> Value {
        let mut values: Vec<String> = disks.iter().filter_map(f).collect();
        values.dedup();
        match values.len() {
            0 => Value::Null,
            1 => Value::String(values.remove(0)),
            _ => Value::String("mixed".into()),
        }
    };
    result.fact("device", joined(&|d| Some(d.name.clone())));
    result.fact(
        "transport",
        common(&|d| Some(d.transport.as_str().to_string()))
            .as_str()
            .unwrap_or("unknown"),
    );
    // Any rotational member makes the set as slow as a rotational disk.
    let rotational = if disks.iter().any(|d| d.rotational == Some(true)) {
        Value::Bool(true)
    } else if !disks.is_empty() && disks.iter().all(|d| d.rotational == Some(false)) {
        Value::Bool(false)
    } else {
        Value::Null
    };
    result.fact("rotational", rotational);
    result.fact("write_cache", common(&|d| d.write_cache.clone()));
    result.fact("model", joined(&|d| d.model.clone()));
    result.fact("fs_type", storage.mount.fs_type.clone());
    result.fact("mount_options", storage.mount.options.clone());
    result.fact(
        "mount_point",
        storage.mount.mount_point.display().to_string(),
    );
    result.fact("mount_source", storage.mount.source.clone());
    result.fact("disks", json!(disks));
    if disks.is_empty() {
        result.warn(format!(
            "could not identify the block device behind {} ({} from {}): device facts are empty",
            storage.mount.mount_point.display(),
            storage.mount.fs_type,
            storage.mount.source
        ));
    }
}

/// A warning when flushes are faster than the medium can make data durable:
/// a rotational disk cannot commit in under a millisecond, a SATA SSD with a
/// volatile cache rarely in tens of microseconds; a cache is answering.
pub fn implausible_flush_warning(disks: &[BlockDevice], p50_ns: u64) -> Option<String> {
    let volatile_cache = |d: &BlockDevice| d.write_cache.as_deref() == Some("write back");
    let suspect = disks.iter().find(|d| {
        volatile_cache(d)
            && ((d.rotational == Some(true) && p50_ns < 1_000_000)
                || (d.transport == block::Transport::Sata && p50_ns < 100_000))
    })?;
    let kind = if suspect.rotational == Some(true) {
        "rotational"
    } else {
        "SATA"
    };
    let virtio_note = if suspect.transport == block::Transport::Virtio {
        " (virtio disks report rotational=1 by default, so the hypervisor may hide the real \
         medium, or its host cache acknowledges flushes)"
    } else {
        ""
    };
    Some(format!(
        "fdatasync p50 is {:.0} us on {} ({kind}, volatile write cache): too fast for the medium; \
         a cache may be acknowledging flushes without making data durable{virtio_note}",
        p50_ns as f64 / 1000.0,
        suspect.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::block::Transport;

    fn disk(name: &str, transport: Transport, rotational: bool, cache: &str) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            model: None,
            transport,
            rotational: Some(rotational),
            write_cache: Some(cache.into()),
            size_bytes: None,
        }
    }

    #[test]
    fn memory_filesystems_and_ram_disks_are_volatile_but_fuse_is_not() {
        assert!(volatile_reason("tmpfs", &[]).unwrap().contains("memory"));
        assert!(volatile_reason("ramfs", &[]).is_some());
        assert!(volatile_reason("cgroup2", &[]).is_some());
        assert!(volatile_reason("ext4", &["zram0".into()])
            .unwrap()
            .contains("RAM disk"));
        assert_eq!(volatile_reason("ext4", &["vda".into()]), None);
        assert_eq!(volatile_reason("fuse.iq-slowfs", &[]), None);
        assert_eq!(volatile_reason("overlay", &["nvme0n1".into()]), None);
    }

    #[test]
    fn fast_flush_warning_only_for_slow_media_with_volatile_cache() {
        let hdd = disk("sda", Transport::Sata, true, "write back");
        assert!(implausible_flush_warning(std::slice::from_ref(&hdd), 50_000).is_some());
        assert!(implausible_flush_warning(&[hdd], 8_000_000).is_none());
        let ssd = disk("sdb", Transport::Sata, false, "write back");
        assert!(implausible_flush_warning(std::slice::from_ref(&ssd), 30_000).is_some());
        assert!(implausible_flush_warning(&[ssd], 400_000).is_none());
        let through = disk("sdc", Transport::Sata, true, "write through");
        assert!(implausible_flush_warning(&[through], 30_000).is_none());
        let nvme = disk("nvme0n1", Transport::Nvme, false, "write back");
        assert!(implausible_flush_warning(&[nvme], 20_000).is_none());
        let vda = disk("vda", Transport::Virtio, true, "write back");
        assert!(implausible_flush_warning(&[vda], 140_000)
            .unwrap()
            .contains("virtio"));
    }

    #[test]
    fn shm_is_refused_as_tmpfs() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let s = locate(shm).unwrap();
        if s.mount.fs_type == "tmpfs" {
            assert!(s.volatile.is_some());
        }
    }
}
