//! Running iproute2 and nft against the lab's namespaces. Every command
//! names its namespace (`ip -n NS`, `ip netns exec NS`): nothing here ever
//! runs against the host namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running `{program}` (is iproute2/nftables installed?)"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .with_context(|| format!("writing to `{program}`"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{program}`"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let mut shown = format!("{program} {}", args.join(" "));
        if let Some(text) = stdin {
            shown.push_str(&format!(
                " <<< {:?}",
                text.lines().take(12).collect::<Vec<_>>()
            ));
        }
        bail!("`{shown}` failed: {}", err.trim());
    }
    Ok(())
}

/// `ip -n NS <args>`
pub fn ip(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all, None)
}

/// Many `ip` commands in one process: `ip -n NS -batch -`.
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    run(
        "ip",
        &["-n", ns, "-batch", "-"],
        Some(&(lines.join("\n") + "\n")),
    )
}

/// `bridge -n NS -batch -`
pub fn bridge_batch(ns: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    run(
        "bridge",
        &["-n", ns, "-batch", "-"],
        Some(&(lines.join("\n") + "\n")),
    )
}

pub fn netns_add(ns: &str) -> Result<()> {
    run("ip", &["netns", "add", ns], None)?;
    ip(ns, &["link", "set", "lo", "up"])
}

/// Removes a namespace (and every device in it); a missing one is fine.
pub fn netns_del(ns: &str) -> Result<()> {
    if !crate::netns::path_of(ns).exists() {
        return Ok(());
    }
    run("ip", &["netns", "del", ns], None)
}

/// sysctls inside the namespace (`ip netns exec NS sysctl -qw k=v ...`).
pub fn sysctl(ns: &str, settings: &[String]) -> Result<()> {
    let mut args = vec!["netns", "exec", ns, "sysctl", "-qw"];
    args.extend(settings.iter().map(String::as_str));
    run("ip", &args, None)
}

/// An nft ruleset loaded inside the namespace.
pub fn nft(ns: &str, ruleset: &str) -> Result<()> {
    run(
        "ip",
        &["netns", "exec", ns, "nft", "-f", "-"],
        Some(ruleset),
    )
}
