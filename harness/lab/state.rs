//! What a lab made, written to its state directory before each thing is
//! made, so `lab down` removes everything also after a crash of `lab up`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Where labs keep their state unless `--state-dir` says otherwise: /run is
/// a tmpfs, emptied on reboot together with the namespaces it describes.
pub const DEFAULT_BASE: &str = "/run/infraqual/lab";
pub const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabState {
    pub id: String,
    pub created_at: String,
    /// Every namespace the lab makes, recorded before it is made.
    pub namespaces: Vec<String>,
    /// Background processes (agents, delay lines) by pid.
    pub processes: Vec<ProcessState>,
    pub nodes: Vec<NodeState>,
    pub regions: Vec<RegionState>,
    pub fault: Option<String>,
    pub plan: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessState {
    pub role: String,
    pub pid: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub region: String,
    pub node_netns: String,
    pub pod_netns: String,
    pub underlay: String,
    pub native: String,
    pub overlay: String,
    pub agent_url: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionState {
    pub name: String,
    pub one_way_delay_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
}

impl LabState {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).context("encoding lab state")?;
        infraqual_reports::atomic::write(&dir.join(STATE_FILE), &text)
            .with_context(|| format!("writing {}", dir.join(STATE_FILE).display()))
    }

    pub fn load(dir: &Path) -> Result<LabState> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Lab state directories under `base`, oldest first.
pub fn list(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(STATE_FILE).is_file())
        .collect();
    dirs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    dirs
}

/// Six hex digits from the kernel's random pool: short enough for
/// interface-name limits, unique enough for concurrent tests.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 3];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
