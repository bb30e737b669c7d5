//! Helpers for the end-to-end tests: run the real binary, capture output.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn infraqual() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraqual"));
    cmd.env_remove("INFRAQUAL_LOG");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Run {
    run_in(args, None)
}

pub fn run_in(args: &[&str], cwd: Option<&Path>) -> Run {
    let mut cmd = infraqual();
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out: Output = cmd.output().expect("the infraqual binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `infraqual qualify ARGS` and returns the bundle it printed; 1 (a
/// failed check) is still a finished run.
pub fn qualify_bundle(args: &[&str]) -> PathBuf {
    let mut all = vec!["qualify"];
    all.extend(args);
    let r = run(&all);
    assert!(matches!(r.code, 0 | 1), "qualify: {}{}", r.stdout, r.stderr);
    let report = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .expect("qualify prints the report path");
    Path::new(report).parent().unwrap().to_path_buf()
}

/// A quick fsync qualify of `dir` into `out` with `extra` arguments.
pub fn qualify_fsync_bundle(dir: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "--quick",
        "--probes",
        "fsync",
        "--dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    qualify_bundle(&args)
}

/// The slow-disk fixture's binary, built beside this one by `cargo test
/// --workspace` (scripts/test) or `cargo build -p iq-slowfs`.
pub fn slowfs_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_infraqual"))
        .with_file_name(format!("iq-slowfs{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build the slow-disk fixture first (cargo build -p iq-slowfs)",
        bin.display()
    );
    bin
}

/// The single bundle directory a run created under `out`.
pub fn only_bundle(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one bundle in {}: {dirs:?}", out.display());
    dirs[0].clone()
}

/// Bad input: exit 2 and exactly one line on stderr.
pub fn assert_one_line_error(r: &Run, needle: &str) {
    assert_eq!(r.code, 2, "exit code 2 expected; stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {:?}", lines);
    assert!(
        lines[0].contains(needle),
        "error line should mention `{needle}`: {}",
        lines[0]
    );
}

/// The result of `probe` in a run.json node.
pub fn probe_result<'a>(node: &'a serde_json::Value, probe: &str) -> &'a serde_json::Value {
    node["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["probe"] == probe)
        .unwrap_or_else(|| panic!("a {probe} result in {node}"))
}

/// Command lines of running processes that contain `needle` (cargo's own
/// excluded: it names the test binaries' paths).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) && !text.contains("cargo") {
            found.push(text);
        }
    }
    found
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
