//! The result contract as the tests hold it: every run.json and every
//! ProbeResult a test produces must validate against the JSON Schemas in
//! docs/schema/, the same files outside scripts are pointed to.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::{Registry, Resource, Validator};
use serde_json::Value;

pub const PROBE_RESULT_ID: &str = "urn:infraqual:schema:probe-result:1";

pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

fn schema(file: &str) -> Value {
    let path = schema_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Validators {
    probe_result: Validator,
    run: Validator,
}

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let probe_result = schema("probe-result.schema.json");
        // run.schema.json refers to the ProbeResult schema by its $id; the
        // registry answers that reference, nothing is fetched.
        let registry = Registry::new()
            .add(
                PROBE_RESULT_ID,
                Resource::from_contents(probe_result.clone()),
            )
            .and_then(|b| b.prepare())
            .expect("the ProbeResult schema registers");
        let build = |s: &Value| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .offline()
                .build(s)
                .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
        };
        Validators {
            probe_result: build(&probe_result),
            run: build(&schema("run.schema.json")),
        }
    })
}

/// Every violation, one per line, with where it is in the instance.
pub fn run_json_errors(run: &Value) -> Vec<String> {
    errors(&validators().run, run)
}

pub fn probe_result_errors(result: &Value) -> Vec<String> {
    errors(&validators().probe_result, result)
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

pub fn assert_probe_result(result: &Value) {
    let errors = probe_result_errors(result);
    assert!(
        errors.is_empty(),
        "ProbeResult breaks docs/schema/probe-result.schema.json:\n{}\n{result:#}",
        errors.join("\n")
    );
}

/// Parses and validates one run.json; returns it for further assertions.
pub fn assert_run_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let run: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors = run_json_errors(&run);
    assert!(
        errors.is_empty(),
        "{} breaks docs/schema/run.schema.json:\n{}",
        path.display(),
        errors.join("\n")
    );
    run
}

/// Validates every run.json under `dir` (bundles and saved baselines) and
/// returns how many there were; a test that produced bundles expects > 0.
pub fn assert_bundles_under(dir: &Path) -> usize {
    let mut found = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "run.json") {
                assert_run_json(&path);
                found += 1;
            }
        }
    }
    assert!(found > 0, "no run.json under {}", dir.display());
    found
}
