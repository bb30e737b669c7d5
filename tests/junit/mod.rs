//! Reads a JUnit XML file the way a CI system does: with junitparser
//! (Debian's python3-junitparser, installed by scripts/setup-system), so
//! the test checks what an outside JUnit reader makes of our files, not
//! what our own writer meant.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Debian's interpreter, whose dist-packages hold python3-junitparser.
const PYTHON: &str = "/usr/bin/python3";

const READER: &str = r#"
import json, sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = []
    for case in suite:
        results = [{"kind": type(r).__name__.lower(), "message": r.message} for r in case.result]
        cases.append({"classname": case.classname, "name": case.name, "results": results})
    suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                   "errors": suite.errors, "skipped": suite.skipped, "cases": cases})
print(json.dumps({"name": xml.name, "tests": xml.tests, "failures": xml.failures,
                  "errors": xml.errors, "skipped": xml.skipped, "suites": suites}))
"#;

/// The file as junitparser reads it: suites with their counts and cases,
/// each case's results (`failure`, `error`, `skipped`) with their messages.
pub fn read(path: &Path) -> Value {
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(READER)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("{PYTHON}: {e} (scripts/setup-system installs python3-junitparser)")
        });
    assert!(
        out.status.success(),
        "junitparser could not read {}: {} (is python3-junitparser installed? scripts/setup-system)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every case of every suite as (suite, case name, result kinds).
pub fn cases(junit: &Value) -> Vec<(String, String, Vec<String>)> {
    junit["suites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["cases"].as_array().unwrap().iter().map(move |c| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                    c["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["kind"].as_str().unwrap().to_string())
                        .collect(),
                )
            })
        })
        .collect()
}
