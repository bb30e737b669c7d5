//! Installed tools the probes depend on: where they are and which version.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The first executable named `name` on PATH or in the sbin directories
/// (root tools such as iptables live in /usr/sbin, which PATH may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// First line of `<tool> <args>`'s output (stdout, else stderr).
pub fn version_line(tool: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// `legacy` or `nf_tables` from `iptables --version` ("iptables v1.8.9 (nf_tables)").
pub fn iptables_backend(version_line: &str) -> Option<&'static str> {
    if version_line.contains("nf_tables") {
        Some("nf_tables")
    } else if version_line.contains("legacy") {
        Some("legacy")
    } else if version_line.starts_with("iptables v") {
        // Releases before 1.8 had only the legacy backend and did not say so.
        Some("legacy")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_version_line() {
        assert_eq!(
            iptables_backend("iptables v1.8.9 (nf_tables)"),
            Some("nf_tables")
        );
        assert_eq!(iptables_backend("iptables v1.8.9 (legacy)"), Some("legacy"));
        assert_eq!(iptables_backend("iptables v1.6.1"), Some("legacy"));
        assert_eq!(iptables_backend("nope"), None);
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-tool-iq").is_none());
    }
}
