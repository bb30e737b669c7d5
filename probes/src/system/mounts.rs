//! Which mount, filesystem and device a path lives on, from
//! /proc/self/mountinfo and stat(2).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::ProbeError;

/// One line of /proc/self/mountinfo, the fields we use.
#[derive(Clone, Debug, PartialEq)]
pub struct MountEntry {
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    /// Per-mount options joined with the superblock options.
    pub options: String,
}

/// Filesystems whose fsync does not reach a disk.
pub const VOLATILE_FS: &[&str] = &["tmpfs", "ramfs", "devtmpfs", "proc", "sysfs", "hugetlbfs"];

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent maj:min root mount-point opts [optional...] - fstype source superopts
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let mount_point = unescape(fields.get(4)?);
    let mount_opts = fields.get(5).copied().unwrap_or("");
    let mut rest = right.split(' ');
    let fs_type = rest.next()?.to_string();
    let source = unescape(rest.next().unwrap_or(""));
    let super_opts = rest.next().unwrap_or("");
    Some(MountEntry {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: PathBuf::from(mount_point),
        fs_type,
        source,
        options: format!("{mount_opts},{super_opts}")
            .trim_matches(',')
            .to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path`: the entry whose device matches the path's
/// st_dev; among several (bind mounts), the longest mount point that is a
/// prefix of the canonical path.
pub fn mount_of(path: &Path) -> Result<MountEntry, ProbeError> {
    let canonical = path.canonicalize().map_err(|e| ProbeError::io(path, e))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| ProbeError::io(&canonical, e))?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| ProbeError::io("/proc/self/mountinfo", e))?;
    let entries = parse_mountinfo(&text);
    let by_prefix = |e: &&MountEntry| canonical.starts_with(&e.mount_point);
    entries
        .iter()
        .filter(|e| e.major == major && e.minor == minor)
        .filter(by_prefix)
        .max_by_key(|e| e.mount_point.as_os_str().len())
        .or_else(|| {
            entries
                .iter()
                .filter(by_prefix)
                .max_by_key(|e| e.mount_point.as_os_str().len())
        })
        .cloned()
        .ok_or_else(|| ProbeError::Failed {
            probe: "mounts".into(),
            message: format!("no mount found for {}", canonical.display()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
25 24 0:23 / /dev/shm rw,relatime shared:5 - tmpfs tmpfs rw,size=24684092k\n\
90 27 259:3 / /mnt/my\\040disk rw,noatime - xfs /dev/nvme0n1p3 rw,attr2\n";

    #[test]
    fn parses_fields_and_optional_tags() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].major, m[0].minor), (254, 0));
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[0].options, "rw,relatime,rw,discard");
        assert_eq!(m[1].fs_type, "tmpfs");
        assert_eq!(m[1].mount_point, PathBuf::from("/dev/shm"));
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(m[2].source, "/dev/nvme0n1p3");
    }

    #[test]
    fn root_of_this_machine_has_a_mount() {
        let m = mount_of(Path::new("/")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/"));
        assert!(!m.fs_type.is_empty());
    }
}
