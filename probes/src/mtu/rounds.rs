//! Several mtu rounds as one result: per path, the round that carried the
//! smallest packet (a black hole in any round is one in the merge, since a
//! path that lost large packets once will lose them again), and the
//! black-hole verdict judged on those paths.

use serde_json::{Map, Value};

use crate::error::ProbeError;
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::rounds::merge_common;

use super::judge;

pub fn merge(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
    let mut merged = merge_common(rounds)?;
    let mut worst: Map<String, Value> = Map::new();
    for round in &merged.rounds {
        let Some(Value::Object(paths)) = round.facts.get("paths") else {
            continue;
        };
        for (key, path) in paths {
            let replaces = match worst.get(key) {
                None => true,
                Some(kept) => smaller(path, kept),
            };
            if replaces {
                worst.insert(key.clone(), path.clone());
            }
        }
    }
    let holes: Vec<(String, u32, u32)> = worst
        .iter()
        .filter(|(_, path)| hole(path))
        .map(|(key, path)| (key.clone(), bytes(path, "max_packet"), bytes(path, "iface_mtu")))
        .collect();
    merged.fact("paths", Value::Object(worst));
    judge(&mut merged, &holes, profile);
    Ok(merged)
}

/// Whether path `a` is worse than `b`: a black hole before a clean path,
/// then the smaller packet carried.
fn smaller(a: &Value, b: &Value) -> bool {
    let rank = |v: &Value| (hole(v), std::cmp::Reverse(bytes(v, "max_packet")));
    rank(a) > rank(b)
}

fn hole(path: &Value) -> bool {
    path.get("blackhole")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn bytes(path: &Value, key: &str) -> u32 {
    path.get(key)
        .and_then(Value::as_u64)
        .and_then(|b| u32::try_from(b).ok())
        .unwrap_or(0)
}
