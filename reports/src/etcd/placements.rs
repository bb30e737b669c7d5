//! Which member sets to simulate: every 3-member set of the measured nodes,
//! and every 5-member set where there are five, each with every member as
//! leader.

use super::{EtcdInputError, ModelInputs};

/// Cluster sizes considered when the user names no members: the sizes etcd
/// recommends (odd, so a quorum survives a member's loss).
const SIZES: [usize; 2] = [3, 5];

/// Every placement whose member pairs all have a round trip.
pub fn all(inputs: &ModelInputs) -> Result<Vec<Vec<String>>, EtcdInputError> {
    let nodes = inputs.measured_nodes();
    if nodes.len() < 3 {
        let found = if nodes.is_empty() {
            "no node has both fsync and rtt results".to_string()
        } else {
            format!(
                "only {} node(s) have both fsync and rtt results ({})",
                nodes.len(),
                nodes.join(", ")
            )
        };
        return Err(EtcdInputError::TooFewNodes { found });
    }
    let mut out = Vec::new();
    let mut first_gap = None;
    for size in SIZES.into_iter().filter(|&s| s <= nodes.len()) {
        for set in combinations(&nodes, size) {
            match check_pairs(inputs, &set) {
                Ok(()) => out.push(set),
                Err(e) => {
                    first_gap.get_or_insert(e);
                }
            }
        }
    }
    match (out.is_empty(), first_gap) {
        (true, Some(gap)) => Err(gap),
        _ => Ok(out),
    }
}

/// Ok when every pair of `members` has a measured round trip.
pub fn check_pairs(inputs: &ModelInputs, members: &[String]) -> Result<(), EtcdInputError> {
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            if inputs.round_trip(a, b).is_none() {
                return Err(EtcdInputError::NoPairRtt {
                    a: a.clone(),
                    b: b.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The k-element subsets of `items`, in lexicographic order.
pub fn combinations(items: &[String], k: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if k == 0 || k > items.len() {
        return out;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        out.push(idx.iter().map(|&i| items[i].clone()).collect());
        let Some(pos) = (0..k).rev().find(|&i| idx[i] != i + items.len() - k) else {
            return out;
        };
        idx[pos] += 1;
        for j in pos + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}
