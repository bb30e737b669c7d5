//! Threshold profiles (configs/profiles/*.toml): each check's warn and fail
//! thresholds, so users tighten or relax verdicts without code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::result::{Status, Verdict};

/// The default profile, compiled in so the binary works without configs/.
pub const ETCD_PROFILE_TOML: &str = include_str!("../../configs/profiles/etcd.toml");

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: check `{check}`: {message}")]
    Invalid {
        origin: String,
        check: String,
        message: String,
    },
}

pub use crate::probe::Better;

/// Thresholds of one check. With `better = "lower"`, an observed value at or
/// above `fail` fails and one at or above `warn` warns; mirrored for "higher".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckThresholds {
    #[serde(default)]
    pub warn: Option<f64>,
    pub fail: f64,
    pub unit: String,
    #[serde(default)]
    pub better: Better,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub checks: BTreeMap<String, CheckThresholds>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::builtin("etcd").expect("the built-in etcd profile is valid")
    }
}

impl Profile {
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        for (check, t) in &profile.checks {
            let invalid = |message: &str| ProfileError::Invalid {
                origin: origin.to_string(),
                check: check.clone(),
                message: message.to_string(),
            };
            if !t.fail.is_finite() || t.warn.is_some_and(|w| !w.is_finite()) {
                return Err(invalid("thresholds must be finite numbers"));
            }
            if let Some(warn) = t.warn {
                let ordered = match t.better {
                    Better::Lower => warn <= t.fail,
                    Better::Higher => warn >= t.fail,
                };
                if !ordered {
                    return Err(invalid("warn must be on the good side of fail"));
                }
            }
        }
        Ok(profile)
    }

    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Profiles compiled into the binary, by name.
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "etcd" => Self::parse(ETCD_PROFILE_TOML, "builtin profile etcd").ok(),
            _ => None,
        }
    }

    /// Judges `observed` against the check's thresholds; a check the profile
    /// does not name is reported as skipped rather than silently passed.
    pub fn judge(&self, check: &str, observed: f64) -> Verdict {
        let Some(t) = self.checks.get(check) else {
            return Verdict::skip(
                check,
                "",
                format!("profile `{}` has no thresholds for this check", self.name),
            );
        };
        let at_or_beyond = |limit: f64| match t.better {
            Better::Lower => observed >= limit,
            Better::Higher => observed <= limit,
        };
        let status = if at_or_beyond(t.fail) {
            Status::Fail
        } else if t.warn.is_some_and(at_or_beyond) {
            Status::Warn
        } else {
            Status::Pass
        };
        let threshold = match status {
            Status::Warn => t.warn,
            _ => Some(t.fail),
        };
        Verdict {
            check: check.to_string(),
            status,
            observed: Some(observed),
            threshold,
            unit: t.unit.clone(),
            note: t.note.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_etcd_profile_parses_and_judges_fsync() {
        let p = Profile::default();
        assert_eq!(p.name, "etcd");
        assert_eq!(
            p.judge("fsync.fdatasync.p99", 260_000.0).status,
            Status::Pass
        );
        assert_eq!(
            p.judge("fsync.fdatasync.p99", 12_000_000.0).status,
            Status::Fail
        );
        let steal = |pct| p.judge("steal.pct", pct).status;
        assert_eq!(steal(1.0), Status::Pass);
        assert_eq!(steal(7.0), Status::Warn);
        assert_eq!(steal(12.0), Status::Fail);
    }

    #[test]
    fn unknown_check_is_skipped_with_reason() {
        let v = Profile::default().judge("nope.check", 1.0);
        assert_eq!(v.status, Status::Skip);
        assert!(v.note.contains("no thresholds"));
    }

    #[test]
    fn higher_is_better_mirrors_the_comparison() {
        let p = Profile::parse(
            "name='t'\n[checks.iops]\nwarn=500\nfail=50\nunit='/s'\nbetter='higher'\n",
            "t",
        )
        .unwrap();
        assert_eq!(p.judge("iops", 1000.0).status, Status::Pass);
        assert_eq!(p.judge("iops", 200.0).status, Status::Warn);
        assert_eq!(p.judge("iops", 10.0).status, Status::Fail);
    }

    #[test]
    fn bad_profiles_name_their_origin() {
        let e =
            Profile::parse("name='t'\n[checks.x]\nfail='high'\nunit='ns'\n", "p.toml").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:"), "{e}");
        let e = Profile::parse(
            "name='t'\n[checks.x]\nwarn=20\nfail=10\nunit='ns'\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("warn must be"), "{e}");
    }
}
