//! Saved baselines, criterion's model: a named copy of a run's run.json and
//! plan.toml stored beside the runs (`<runs>/baselines/<NAME>/`), so a later
//! run can be compared against it (`infraqual compare --baseline NAME RUN`).
//!
//! Saving is atomic: the copy is made in a temporary directory next to the
//! target and renamed into place, so a reader sees the old baseline or the
//! new one, never half of either.

use std::path::{Path, PathBuf};

use crate::bundle::{self, RunRecord};
use crate::error::ReportError;

/// The directory under a runs directory that holds the baselines.
pub const BASELINES_DIR: &str = "baselines";

/// The files a baseline keeps of its run.
const FILES: [&str; 2] = ["run.json", "plan.toml"];

/// `<runs>/baselines/<name>/`
pub fn dir_of(runs_dir: &Path, name: &str) -> Result<PathBuf, ReportError> {
    validate_name(name)?;
    Ok(runs_dir.join(BASELINES_DIR).join(name))
}

/// A name is one path component of letters, digits, `.`, `_` and `-`,
/// not starting with a dot.
pub fn validate_name(name: &str) -> Result<(), ReportError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ReportError::Invalid {
            what: format!("baseline name {name:?}"),
            reason: "use letters, digits, '.', '_' and '-' (not starting with '.')".into(),
        })
    }
}

/// Copies `bundle_dir`'s run.json (and plan.toml when present) to
/// `<runs_dir>/baselines/<name>/`, replacing an older baseline of that
/// name. The run.json must load, so a baseline is always comparable.
/// Returns the baseline directory.
pub fn save(runs_dir: &Path, name: &str, bundle_dir: &Path) -> Result<PathBuf, ReportError> {
    let target = dir_of(runs_dir, name)?;
    bundle::load(bundle_dir)?;
    let parent = runs_dir.join(BASELINES_DIR);
    std::fs::create_dir_all(&parent).map_err(|e| ReportError::io(&parent, e))?;
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| {
        std::fs::create_dir(&staging).map_err(|e| ReportError::io(&staging, e))?;
        for file in FILES {
            let from = bundle_dir.join(file);
            if !from.exists() && file != "run.json" {
                continue;
            }
            let bytes = std::fs::read(&from).map_err(|e| ReportError::io(&from, e))?;
            crate::atomic::write(&staging.join(file), &bytes)?;
        }
        // rename(2) does not replace a non-empty directory: move the old
        // baseline aside first, then drop it once the new one is in place.
        let had_old = target.exists();
        if had_old {
            std::fs::rename(&target, &old).map_err(|e| ReportError::io(&target, e))?;
        }
        if let Err(e) = std::fs::rename(&staging, &target) {
            if had_old {
                let _ = std::fs::rename(&old, &target);
            }
            return Err(ReportError::io(&target, e));
        }
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        if let Ok(d) = std::fs::File::open(&parent) {
            let _ = d.sync_all();
        }
        Ok(target.clone())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Loads `<runs_dir>/baselines/<name>/run.json`; a missing baseline names
/// the directory it looked in and the baselines that exist.
pub fn load(runs_dir: &Path, name: &str) -> Result<(PathBuf, RunRecord), ReportError> {
    let dir = dir_of(runs_dir, name)?;
    if !dir.join("run.json").is_file() {
        let known = list(runs_dir);
        return Err(ReportError::Invalid {
            what: format!("baseline {name:?}"),
            reason: format!(
                "not found in {} (saved baselines: {})",
                runs_dir.join(BASELINES_DIR).display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        });
    }
    let record = bundle::load(&dir)?;
    Ok((dir, record))
}

/// Names of the saved baselines, sorted.
pub fn list(runs_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(runs_dir.join(BASELINES_DIR))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("run.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::BundleWriter;
    use infraqual_probes::{ProbeResult, Profile};

    fn bundle(out: &Path, node: &str) -> PathBuf {
        let mut w = BundleWriter::create(
            out,
            "name = 't'\n",
            serde_json::Value::Null,
            Profile::default(),
        )
        .unwrap();
        w.add_result(node, ProbeResult::new(infraqual_probes::fsync::NAME, node))
            .unwrap();
        w.finish().unwrap();
        w.dir().to_path_buf()
    }

    #[test]
    fn save_load_and_replace() {
        let runs = tempfile::tempdir().unwrap();
        let first = bundle(runs.path(), "n1");
        let dir = save(runs.path(), "main", &first).unwrap();
        assert_eq!(dir, runs.path().join("baselines/main"));
        assert!(dir.join("plan.toml").is_file());
        let (_, rec) = load(runs.path(), "main").unwrap();
        assert_eq!(rec.nodes[0].name, "n1");

        let second = bundle(runs.path(), "n2");
        save(runs.path(), "main", &second).unwrap();
        let (_, rec) = load(runs.path(), "main").unwrap();
        assert_eq!(rec.nodes[0].name, "n2", "replaced");
        assert_eq!(list(runs.path()), vec!["main".to_string()]);
        let leftovers: Vec<_> = std::fs::read_dir(runs.path().join("baselines"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no staging dirs left: {leftovers:?}");
    }

    #[test]
    fn bad_names_and_missing_baselines_are_one_clear_error() {
        let runs = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            let e = dir_of(runs.path(), bad).unwrap_err().to_string();
            assert!(e.contains("baseline name"), "{e}");
        }
        let e = load(runs.path(), "nope").unwrap_err().to_string();
        assert!(
            e.contains("\"nope\"") && e.contains("saved baselines: none"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = save(runs.path(), "x", empty.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.json"), "{e}");
    }
}
