//! A fleet soak outlives its coordinator: `infraqual run PLAN` again after
//! the coordinator died continues the soak in the bundle it left. The
//! bundle's run.json never got its `finished_at`, and `soak.json` beside it
//! (the ledger) holds when the soak began and which agent soak each node's
//! log was following, so the next coordinator can collect what those soaks
//! measured while nobody polled, end them, and soak only for what the
//! plan's `for` still allows. An flock on `soak.lock` keeps two live
//! coordinators out of one bundle; the kernel drops it when its holder dies.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use infraqual_reports::bundle::BundleWriter;
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::soak::epoch_seconds;

const LEDGER: &str = "soak.json";
const LOCK: &str = "soak.lock";

/// Held while this coordinator soaks into its bundle.
pub struct SoakLock {
    _file: File,
}

impl SoakLock {
    fn take(dir: &Path) -> Result<Option<SoakLock>> {
        let path = dir.join(LOCK);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        Ok(locked.then_some(SoakLock { _file: file }))
    }
}

/// The bundle a soak plan's run writes to: the unfinished soak of the same
/// plan under `out` when there is one (said on stderr), else a new one. An
/// unfinished soak of another plan there, or one whose coordinator still
/// runs, is an error: `out` is whose soak it continues.
pub fn open_bundle(out: &Path, plan: &Plan) -> Result<(BundleWriter, SoakLock)> {
    let mut same = None;
    for dir in unfinished_soaks(out) {
        let text = std::fs::read_to_string(dir.join("plan.toml")).unwrap_or_default();
        if text != plan.text {
            bail!(
                "--out {}: {} holds an unfinished soak of another plan; continue it with that plan or choose another --out",
                out.display(),
                dir.display()
            );
        }
        same = Some(dir);
    }
    if let Some(dir) = same {
        let lock = SoakLock::take(&dir)?.with_context(|| {
            format!(
                "--out {}: the soak in {} is still running (another coordinator holds it)",
                out.display(),
                dir.display()
            )
        })?;
        let mut bundle = BundleWriter::reopen(&dir)?;
        bundle.drop_results();
        eprintln!(
            "soak: continuing {} (its coordinator stopped before the soak ended; run.json last written {})",
            dir.display(),
            last_written(&dir)
        );
        return Ok((bundle, lock));
    }
    if let Some(soak) = &plan.soak {
        super::soak_budget::check(out, plan, soak)?;
    }
    let bundle = BundleWriter::create(out, &plan.text, plan.as_json(), plan.profile.clone())
        .with_context(|| format!("--out {}", out.display()))?;
    let lock = SoakLock::take(bundle.dir())?
        .with_context(|| format!("{}: locked by another process", bundle.dir().display()))?;
    // From here on the bundle is a soak the next run can continue, also
    // if this one dies before its agents start soaking.
    Ledger::create(bundle.dir())?;
    Ok((bundle, lock))
}

/// Bundles under `out` whose soak never finished, oldest first.
fn unfinished_soaks(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|dir| dir.join(LEDGER).is_file())
        .filter(|dir| unfinished(dir))
        .collect();
    dirs.sort();
    dirs
}

/// run.json without its `finished_at`; read for that key alone, as a
/// day's soak of a large fleet makes it hundreds of MB.
fn unfinished(dir: &Path) -> bool {
    #[derive(Deserialize)]
    struct Finished {
        #[serde(default)]
        finished_at: Option<String>,
    }
    File::open(dir.join("run.json"))
        .ok()
        .and_then(|f| serde_json::from_reader::<_, Finished>(std::io::BufReader::new(f)).ok())
        .is_some_and(|r| r.finished_at.is_none())
}

fn last_written(dir: &Path) -> String {
    std::fs::metadata(dir.join("run.json"))
        .and_then(|m| m.modified())
        .map(infraqual_probes::timestamp::rfc3339_seconds)
        .unwrap_or_else(|_| "at an unknown time".into())
}

/// One agent soak a node's log follows: its id on the agent and the size
/// of the node's log when it began (the agent's byte 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub soak_id: String,
    pub log_from: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LedgerData {
    /// When the soak's run began, seconds since the epoch (coordinator's
    /// clock).
    began: f64,
    /// Coordinators that have soaked into the bundle.
    #[serde(default)]
    coordinators: u32,
    #[serde(default)]
    sessions: BTreeMap<String, Session>,
}

/// `soak.json`: written with the bundle, rewritten atomically when a
/// coordinator takes the soak up and when a node's agent soak begins or
/// ends.
pub struct Ledger {
    path: PathBuf,
    data: Mutex<LedgerData>,
    /// Another coordinator soaked into the bundle before this one.
    pub continued: bool,
}

impl Ledger {
    /// A new soak's ledger: it begins now.
    pub fn create(bundle_dir: &Path) -> Result<()> {
        let data = LedgerData {
            began: epoch_seconds(SystemTime::now()),
            ..Default::default()
        };
        write(&bundle_dir.join(LEDGER), &data)
    }

    /// The bundle's ledger, counting this coordinator in.
    pub fn open(bundle_dir: &Path) -> Result<Ledger> {
        let path = bundle_dir.join(LEDGER);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut data: LedgerData = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        data.coordinators += 1;
        write(&path, &data)?;
        Ok(Ledger {
            path,
            continued: data.coordinators > 1,
            data: Mutex::new(data),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time since the soak began (zero if the clock went back).
    pub fn elapsed(&self) -> Duration {
        let began = self.lock().began;
        Duration::from_secs_f64((epoch_seconds(SystemTime::now()) - began).max(0.0))
    }

    pub fn session(&self, node: &str) -> Option<Session> {
        self.lock().sessions.get(node).cloned()
    }

    pub fn begin(&self, node: &str, session: Session) -> Result<()> {
        let mut data = self.lock();
        data.sessions.insert(node.to_string(), session);
        self.save(&data)
    }

    pub fn end(&self, node: &str) -> Result<()> {
        let mut data = self.lock();
        if data.sessions.remove(node).is_some() {
            self.save(&data)?;
        }
        Ok(())
    }

    fn save(&self, data: &LedgerData) -> Result<()> {
        write(&self.path, data)
    }
}

fn write(path: &Path, data: &LedgerData) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(data).context("encoding the soak ledger")?;
    infraqual_reports::atomic::write(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}
