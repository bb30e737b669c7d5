//! The run bundle (docs/result-contract.md): runs/<run_id>/ with plan.toml
//! and run.json, rewritten atomically after every result so a crash keeps
//! what finished.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use infraqual_probes::{timestamp, ProbeResult, Profile, Status, SCHEMA_VERSION};
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
        let (run_id, dir) = create_run_dir(out, new_run_id)?;
        let record = RunRecord {
            schema_version: SCHEMA_VERSION,
            run_id,
            started_at: timestamp::now_rfc3339(),
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

    /// Takes up an unfinished bundle again (a run continued after its
    /// process died): its record as run.json last held it.
    pub fn reopen(dir: &Path) -> Result<Self, ReportError> {
        let record = load(dir)?;
        Ok(BundleWriter {
            dir: dir.to_path_buf(),
            record,
        })
    }

    /// Forgets every node's results (not its inventory or errors), for a
    /// continued run that records them again from what it measured in all.
    pub fn drop_results(&mut self) {
        for node in &mut self.record.nodes {
            node.results.clear();
        }
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
        if result.probe == infraqual_probes::inventory::NAME {
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
        self.record.finished_at = Some(timestamp::now_rfc3339());
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

/// Attempts at a free run id. Ids start with the microsecond, so a retry
/// is needed only when another run started in the same one and drew the same
/// salt; a directory someone made by hand with a run's name also ends here.
const RUN_ID_ATTEMPTS: u32 = 8;

/// Makes `<out>/<run_id>/` exclusively: an existing directory is never
/// reused for a second run, the next id is tried instead.
fn create_run_dir(
    out: &Path,
    mut next_id: impl FnMut(u32) -> String,
) -> Result<(String, PathBuf), ReportError> {
    let mut attempt = 0;
    loop {
        let run_id = next_id(attempt);
        let dir = out.join(&run_id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((run_id, dir)),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && attempt + 1 < RUN_ID_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(ReportError::io(&dir, e)),
        }
    }
}

/// `20261122T100000.123456Z-3f2a`: the UTC start to the microsecond, fixed
/// width so ids sort by start time, then a random salt for runs sharing it.
fn new_run_id(attempt: u32) -> String {
    let salt = RandomState::new().hash_one(attempt) as u16;
    run_id_at(SystemTime::now(), salt)
}

fn run_id_at(at: SystemTime, salt: u16) -> String {
    let t = timestamp::utc(at);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z-{salt:04x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_fixed_width_utc_microseconds() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_795_341_600, 1_234_999);
        assert_eq!(run_id_at(at, 0x3f2a), "20261122T100000.001234Z-3f2a");
        assert_eq!(
            run_id_at(SystemTime::UNIX_EPOCH, 7),
            "19700101T000000.000000Z-0007"
        );
    }

    #[test]
    fn run_ids_sort_by_start_time() {
        // Runs started within one second once sorted by their random salt.
        let out = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..20)
            .map(|_| {
                let w =
                    BundleWriter::create(out.path(), "", Value::Null, Profile::default()).unwrap();
                w.record().run_id.clone()
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let listed = std::fs::read_dir(out.path()).unwrap().count();
        assert_eq!(listed, ids.len(), "one directory per run");
    }

    #[test]
    fn a_taken_run_id_gets_the_next_one_never_the_same_directory() {
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(out.path().join("taken")).unwrap();
        let mut tried = Vec::new();
        let (id, dir) = create_run_dir(out.path(), |attempt| {
            tried.push(attempt);
            if attempt == 0 { "taken" } else { "free" }.to_string()
        })
        .unwrap();
        assert_eq!((id.as_str(), tried), ("free", vec![0, 1]));
        assert!(dir.is_dir());

        let e = create_run_dir(out.path(), |_| "taken".to_string()).unwrap_err();
        assert!(e.to_string().contains("taken"), "{e}");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 2);
    }

    #[test]
    fn run_json_stamps_are_rfc3339_utc_seconds() {
        let out = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::create(out.path(), "", Value::Null, Profile::default()).unwrap();
        let done = w.finish().unwrap();
        for stamp in [
            done.started_at.as_str(),
            done.finished_at.as_deref().unwrap(),
        ] {
            let shape: String = stamp
                .chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect();
            assert_eq!(shape, "0000-00-00T00:00:00Z", "{stamp}");
        }
    }

    #[test]
    fn writer_keeps_run_json_current_and_loadable() {
        let out = tempfile::tempdir().unwrap();
        let mut w =
            BundleWriter::create(out.path(), "name = 't'\n", Value::Null, Profile::default())
                .unwrap();
        let dir = w.dir().to_path_buf();
        assert_eq!(load(&dir).unwrap().verdict, RunVerdict::Incomplete);

        w.add_result(
            "n1",
            ProbeResult::new(infraqual_probes::inventory::NAME, "n1"),
        )
        .unwrap();
        w.add_result("n1", ProbeResult::new(infraqual_probes::fsync::NAME, "n1"))
            .unwrap();
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
