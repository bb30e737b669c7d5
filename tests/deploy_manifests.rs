//! deploy/kubernetes/: every manifest passes `kubernetes-validate --strict`
//! (installed by scripts/setup-kubernetes-validate), the kustomization lists
//! exactly the manifests there, every container's args parse with
//! infraqual's own CLI, every INFRAQUAL_* variable is one the CLI reads, and
//! the coordinator's plan is a valid `[discover]` plan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use infraqual::cli::Cli;
use infraqual::coordinator::plan::Plan;
use serde_json::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var("INFRAQUAL_VENV").unwrap_or_else(|_| "/opt/infraqual/venv".into());
    let bin = Path::new(&venv).join("bin").join(tool);
    assert!(
        bin.exists(),
        "{} missing: run scripts/setup-kubernetes-validate (called by scripts/setup-system)",
        bin.display()
    );
    bin
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// Every document of every YAML file, as JSON (PyYAML from the same venv).
fn documents(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
             json.dump(docs, sys.stdout)",
        ])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_manifest_is_valid_for_a_current_kubernetes() {
    let files = manifests();
    assert!(files.len() >= 10, "{files:?}");
    let out = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = documents(&[manifests_dir().join("kustomization.yaml")]);
    let listed: BTreeSet<String> = kustomization[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = manifests()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, present);
}

/// Kubernetes expands `$(VAR)` in args from the container's env.
fn expand(arg: &str, env: &[(String, String)]) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

fn sample_value(env: &Value) -> String {
    if let Some(v) = env["value"].as_str() {
        return v.to_string();
    }
    match env["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
        Some("status.podIP" | "status.hostIP") => "10.244.1.5".into(),
        Some("spec.nodeName") => "node-1".into(),
        other => panic!("unexpected env source {other:?}"),
    }
}

/// The environment variables a subcommand reads (clap's `env = ...`).
fn env_names(subcommand: &str) -> BTreeSet<String> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(subcommand).unwrap();
    sub.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn container_args_parse_with_infraqual_and_env_names_are_known() {
    let mut containers = 0;
    for doc in documents(&manifests()) {
        let spec = match doc["kind"].as_str() {
            Some("DaemonSet" | "Job") => &doc["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in spec["containers"].as_array().unwrap() {
            containers += 1;
            let env: Vec<(String, String)> = c["env"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|e| (e["name"].as_str().unwrap().to_string(), sample_value(e)))
                        .collect()
                })
                .unwrap_or_default();
            let args: Vec<String> = std::iter::once("infraqual".to_string())
                .chain(
                    c["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| expand(a.as_str().unwrap(), &env)),
                )
                .collect();
            let parsed = Cli::try_parse_from(&args);
            assert!(
                parsed.is_ok(),
                "{} {}: {:?}\n{}",
                doc["metadata"]["name"],
                c["name"],
                args,
                parsed.err().map(|e| e.to_string()).unwrap_or_default()
            );
            let known = env_names(&args[1]);
            for (name, value) in &env {
                if name.starts_with("INFRAQUAL_") {
                    assert!(
                        known.contains(name),
                        "{name} is not read by `infraqual {}`",
                        args[1]
                    );
                    // The value must parse as the flag it stands for.
                    let flag = known_flag(&args[1], name);
                    let with_flag: Vec<String> =
                        args.iter().cloned().chain([flag, value.clone()]).collect();
                    let reparsed = Cli::try_parse_from(&with_flag);
                    assert!(reparsed.is_ok(), "{name}={value}: {:?}", reparsed.err());
                }
            }
        }
    }
    assert!(containers >= 4, "{containers} containers");
}

fn known_flag(subcommand: &str, env: &str) -> String {
    let cli = Cli::command();
    let sub = cli.find_subcommand(subcommand).unwrap();
    let arg = sub
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == env))
        .unwrap();
    format!("--{}", arg.get_long().unwrap())
}

#[test]
fn the_coordinators_plan_is_a_discover_plan() {
    let docs = documents(&[manifests_dir().join("plan-configmap.yaml")]);
    let text = docs[0]["data"]["plan.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    let text = text
        .replace("/etc/infraqual/token/token", token.to_str().unwrap())
        .replace("[discover]\n", "[discover]\ndns_server = \"192.0.2.53\"\n");
    let plan = Plan::parse(&text, "plan.toml", dir.path()).unwrap();
    let d = plan.discover.unwrap();
    let paths: Vec<&str> = d.services.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["overlay", "native"]);
    assert!(plan.agents.is_empty());
}
