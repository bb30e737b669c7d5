//! The run bundle (docs/result-contract.md): runs/<run_id>/ with plan.toml
//! and run.json, rewritten atomically after every result so a crash keeps
//! what finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use infraqual_probes::{ProbeResult, Profile, Status, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic;
use crate::error::ReportError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    Pass,
    Fail,
    Incomplete,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    /// The probe that failed, or None for the node as a whole (unreachable).
    pub probe: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub inventory: Option<ProbeResult>,
    #[serde(default)]
    pub results: Vec<ProbeResult>,
    #[serde(default)]
    pub errors: Vec<NodeError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub run_id: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub tool_version: String,
    pub plan: Value,
    pub profile: Profile,
    pub nodes: Vec<NodeRecord>,
    pub verdict: RunVerdict,
}

impl RunRecord {
    /// Every result with its node, inventory first.
    pub fn results(&self) -> impl Iterator<Item = (&NodeRecord, &ProbeResult)> {
        self.nodes.iter().flat_map(|n| {
            n.inventory
                .iter()
                .chain(n.results.iter())
                .map(move |r| (n, r))
        })
    }

    /// incomplete when unfinished or any error, fail when any check failed.
    pub fn compute_verdict(&self) -> RunVerdict {
        let unfinished = self.finished_at.is_none();
        let errors = self.nodes.iter().any(|n| !n.errors.is_empty());
        if unfinished || errors {
            return RunVerdict::Incomplete;
        }
        let failed = self
            .results()
            .any(|(_, r)| r.worst_status() == Status::Fail);
        if failed {
            RunVerdict::Fail
        } else {
            RunVerdict::Pass
        }
    }
}

/// Reads and validates runs/<id>/run.json.
pub fn load(dir: &Path) -> Result<RunRecord, ReportError> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| ReportError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let found = raw
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32;
    if found != SCHEMA_VERSION {
        return Err(ReportError::Schema {
            path,
            found,
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(raw).map_err(|e| ReportError::Corrupt {
        path,
        message: e.to_string(),
    })
}

/// Creates a bundle directory and keeps its run.json current.
pub struct BundleWriter {
    dir: PathBuf,
    record: RunRecord,
}

impl BundleWriter {
    /// Makes `<out>/<run_id>/` and writes plan.toml and a first run.json, so
    /// an unwritable output fails before anything is measured.
    pub fn create(
        out: &Path,
        plan_toml: &str,
        plan: Value,
        profile: Profile,
    ) -> Result<Self, ReportError> {
        std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, e))?;
        let run_id = new_run_id();
        let dir = out.join(&run_id);
        std::fs::create_dir(&dir).map_err(|e| ReportError::io(&dir, e))?;
        let record = RunRecord {
            schema_version: SCHEMA_VERSION,
            run_id,
            started_at: now_rfc3339(),
            finished_at: None,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            plan,
            profile,
            nodes: Vec::new(),
            verdict: RunVerdict::Incomplete,
        };
        let writer = BundleWriter { dir, record };
        let first = atomic::write(&writer.dir.join("plan.toml"), plan_toml.as_bytes())
            .and_then(|_| writer.save());
        if let Err(e) = first {
            let _ = std::fs::remove_dir_all(&writer.dir);
            return Err(e);
        }
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    pub fn add_node(&mut self, name: &str, labels: BTreeMap<String, String>) {
        if self.node_mut(name).is_none() {
            self.record.nodes.push(NodeRecord {
                name: name.to_string(),
                labels,
                inventory: None,
                results: Vec::new(),
                errors: Vec::new(),
            });
        }
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeRecord> {
        self.record.nodes.iter_mut().find(|n| n.name == name)
    }

    fn node_entry(&mut self, name: &str) -> &mut NodeRecord {
        self.add_node(name, BTreeMap::new());
        let idx = self
            .record
            .nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or(0);
        &mut self.record.nodes[idx]
    }

    /// Records a result (the inventory goes to the node's `inventory`) and
    /// rewrites run.json.
    pub fn add_result(&mut self, node: &str, result: ProbeResult) -> Result<(), ReportError> {
        self.push_result(node, result);
        self.save()
    }

    pub fn add_error(
        &mut self,
        node: &str,
        probe: Option<&str>,
        message: &str,
    ) -> Result<(), ReportError> {
        self.push_error(node, probe, message);
        self.save()
    }

    /// Records a result without writing; call [`BundleWriter::save`] after a
    /// batch (a fleet's results arrive by the hundred).
    pub fn push_result(&mut self, node: &str, result: ProbeResult) {
        let entry = self.node_entry(node);
        if result.probe == "inventory" {
            entry.inventory = Some(result);
        } else {
            entry.results.push(result);
        }
    }

    pub fn push_error(&mut self, node: &str, probe: Option<&str>, message: &str) {
        self.node_entry(node).errors.push(NodeError {
            probe: probe.map(str::to_string),
            message: message.to_string(),
        });
    }

    /// Stamps the end, computes the verdict, writes run.json a last time.
    pub fn finish(&mut self) -> Result<RunRecord, ReportError> {
        self.record.finished_at = Some(now_rfc3339());
        self.record.verdict = self.record.compute_verdict();
        self.save()?;
        Ok(self.record.clone())
    }

    /// Rewrites run.json atomically with everything recorded so far.
    pub fn save(&self) -> Result<(), ReportError> {
        let bytes = serde_json::to_vec_pretty(&self.record).map_err(|e| ReportError::Encode {
            what: "run.json".into(),
            message: e.to_string(),
        })?;
        atomic::write(&self.dir.join("run.json"), &bytes)
    }
}

fn now_rfc3339() -> String {
    humantime_rfc3339(SystemTime::now())
}

fn humantime_rfc3339(t: SystemTime) -> String {
    // Same format as ProbeResult::started_at: RFC 3339, UTC, seconds.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `20261122T100000Z-3f2a`: sortable by time, unique across concurrent runs.
fn new_run_id() -> String {
    let stamp = humantime_rfc3339(SystemTime::now()).replace(['-', ':'], "");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{stamp}-{salt:04x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(
            humantime_rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn writer_keeps_run_json_current_and_loadable() {
        let out = tempfile::tempdir().unwrap();
        let mut w =
            BundleWriter::create(out.path(), "name = 't'\n", Value::Null, Profile::default())
                .unwrap();
        let dir = w.dir().to_path_buf();
        assert_eq!(load(&dir).unwrap().verdict, RunVerdict::Incomplete);

        w.add_result("n1", ProbeResult::new("inventory", "n1"))
            .unwrap();
        w.add_result("n1", ProbeResult::new("fsync", "n1")).unwrap();
        let mid = load(&dir).unwrap();
        assert!(mid.nodes[0].inventory.is_some());
        assert_eq!(mid.nodes[0].results.len(), 1);
        assert_eq!(mid.finished_at, None);

        let done = w.finish().unwrap();
        assert_eq!(done.verdict, RunVerdict::Pass);
        assert_eq!(load(&dir).unwrap(), done);
        assert!(dir.join("plan.toml").exists());
    }

    #[test]
    fn errors_make_the_run_incomplete() {
        let out = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::create(out.path(), "", Value::Null, Profile::default()).unwrap();
        w.add_error("n1", Some("fsync"), "disk vanished").unwrap();
        assert_eq!(w.finish().unwrap().verdict, RunVerdict::Incomplete);
    }

    #[test]
    fn corrupt_and_future_bundles_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.json"), "{ nope").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run.json") && e.contains("not a valid"), "{e}");
        std::fs::write(dir.path().join("run.json"), r#"{"schema_version": 9}"#).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("schema_version 9"), "{e}");
    }
}
