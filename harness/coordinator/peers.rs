//! Which peers a node measures when a plan says `peers = K`: the K other
//! nodes with the highest rendezvous score for (source, peer). The choice is
//! stable across runs (it depends only on the names), a node that joins or
//! leaves moves only the pairs that involve it, and every node is chosen by
//! about K others, so a fleet of hundreds costs n·K pairs instead of n².

use infraqual_probes::random::{stream_seed, SplitMix64};

/// Keeps the `k` peers of `source` with the highest scores, in their given
/// order; all of them when `k` is None or covers everyone.
pub fn choose<'a>(source: &str, candidates: &[&'a str], k: Option<usize>) -> Vec<&'a str> {
    let Some(k) = k.filter(|k| *k < candidates.len()) else {
        return candidates.to_vec();
    };
    let mut scored: Vec<(u64, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, peer)| (score(source, peer), i))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    let mut keep: Vec<usize> = scored.into_iter().take(k).map(|(_, i)| i).collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| candidates[i]).collect()
}

fn score(source: &str, peer: &str) -> u64 {
    SplitMix64::new(stream_seed(0x9ee5, &format!("{source}\u{0}{peer}"))).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn every_node_is_measured_by_about_k_others_and_choices_are_stable() {
        let all = names(100);
        let mut measured_by: BTreeMap<&str, usize> = BTreeMap::new();
        for source in &all {
            let others: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|n| n != source)
                .collect();
            let chosen = choose(source, &others, Some(5));
            assert_eq!(chosen.len(), 5);
            assert_eq!(chosen, choose(source, &others, Some(5)), "stable");
            for peer in chosen {
                *measured_by.entry(peer).or_default() += 1;
            }
        }
        let total: usize = measured_by.values().sum();
        assert_eq!(total, 500);
        let most = measured_by.values().max().copied().unwrap_or(0);
        assert!(
            most <= 15,
            "a node measured by {most} others: {measured_by:?}"
        );
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_pairs() {
        let all = names(20);
        let others: Vec<&str> = all[1..].iter().map(String::as_str).collect();
        let before = choose(&all[0], &others, Some(4));
        let gone = before[0];
        let fewer: Vec<&str> = others.iter().copied().filter(|n| *n != gone).collect();
        let after = choose(&all[0], &fewer, Some(4));
        let kept: Vec<&&str> = before.iter().filter(|n| **n != gone).collect();
        assert!(
            kept.iter().all(|n| after.contains(n)),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn no_k_or_a_large_k_keeps_everyone() {
        let others = ["a", "b", "c"];
        assert_eq!(choose("x", &others, None), others.to_vec());
        assert_eq!(choose("x", &others, Some(3)), others.to_vec());
    }
}
