//! A plan's `[soak]` section (docs/plan-files.md): every agent soaks for
//! `for`, one interval per `every`, with fsync slices in `dir` when given.

use std::path::PathBuf;
use std::time::Duration;

use infraqual_probes::units::HumanDuration;
use serde::Deserialize;
use serde_json::{json, Value};
use toml::Spanned;

use super::plan::{Locator, PlanError};
use crate::soak::Schedule;

const DEFAULT_EVERY: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakEntry {
    #[serde(rename = "for")]
    for_: Spanned<String>,
    #[serde(default)]
    every: Option<Spanned<String>>,
    #[serde(default)]
    dir: Option<Spanned<String>>,
    #[serde(default)]
    paths: Option<Spanned<Vec<String>>>,
}

#[derive(Clone, Debug)]
pub struct SoakPlan {
    pub total: Duration,
    pub every: Duration,
    /// On each agent, inside one of its --allow-dir directories.
    pub dir: Option<PathBuf>,
    /// Network paths the rtt slices measure to the other agents on; none:
    /// no rtt.
    pub paths: Vec<String>,
}

impl SoakPlan {
    /// `has_probes`: the plan also names `[probes.*]`, which a soak plan
    /// does not run.
    pub(super) fn parse(
        entry: &Spanned<SoakEntry>,
        loc: &Locator,
        has_probes: bool,
    ) -> Result<SoakPlan, PlanError> {
        let s = entry.get_ref();
        if has_probes {
            return Err(loc.at(
                entry.span(),
                "[soak] and [probes.*] together: a soak runs its own paced probes (steal, and fsync in `dir`); remove the [probes] sections",
            ));
        }
        let duration = |text: &Spanned<String>, key: &str| {
            text.get_ref()
                .parse::<HumanDuration>()
                .map(|d| d.0)
                .map_err(|e| loc.at(text.span(), format!("{key}: {e}")))
        };
        let total = duration(&s.for_, "for")?;
        let every = match &s.every {
            Some(e) => duration(e, "every")?,
            None => DEFAULT_EVERY,
        };
        Schedule::new(total, every).map_err(|e| {
            let message = e.to_string().replace("--", "");
            let span = match &s.every {
                Some(e) if message.starts_with("every") => e.span(),
                _ => s.for_.span(),
            };
            loc.at(span, message)
        })?;
        let dir = match &s.dir {
            Some(d) if !d.get_ref().starts_with('/') => {
                return Err(loc.at(
                    d.span(),
                    "dir: an absolute path on the agents (inside their --allow-dir)",
                ))
            }
            Some(d) => Some(PathBuf::from(d.get_ref())),
            None => None,
        };
        let paths = match &s.paths {
            Some(p)
                if p.get_ref().is_empty()
                    || p.get_ref()
                        .iter()
                        .any(|x| x.is_empty() || x.contains(['/', ' '])) =>
            {
                return Err(loc.at(
                    p.span(),
                    "paths: path names, one word each, e.g. [\"native\", \"overlay\"]",
                ))
            }
            Some(p) => p.get_ref().clone(),
            None => Vec::new(),
        };
        Ok(SoakPlan {
            total,
            every,
            dir,
            paths,
        })
    }

    pub fn as_json(&self) -> Value {
        json!({
            "for": HumanDuration(self.total).to_string(),
            "every": HumanDuration(self.every).to_string(),
            "dir": self.dir,
            "paths": self.paths,
        })
    }
}
