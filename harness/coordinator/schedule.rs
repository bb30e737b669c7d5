//! When each pair of a pairwise phase is measured: a round-robin tournament.
//! The pairs are ordered by the round the circle method gives them (every
//! node meets every other once in n − 1 rounds, n even) and put first-fit
//! into slots under two rules:
//!
//! - a node is in at most one pair per slot (the pairs of a slot run at the
//!   same time, and a node measuring two peers at once measures itself);
//! - the boot-id rule: agents on one machine (same boot id) share its CPUs
//!   and its kernel, so a pair whose round trip is short (below
//!   `SHORT_BELOW`, where the other pair's µs of CPU time would show) never
//!   shares a slot with another pair on any of the same machines. Pairs
//!   whose round trip is long (WAN-dominated) may overlap freely.
//!
//! For the full matrix this gives n − 1 slots (n for odd n) instead of
//! n(n − 1) turns; with `peers = K` the pairs are sparse and first-fit packs
//! them into about 2K slots.
//!
//! A short path on a shared machine could only ever run alone, so those
//! measurements are not slotted pair by pair: each source measures all its
//! short same-machine targets in one turn of its own (its targets
//! interleaved exchange by exchange, one exchange in flight), as many turns
//! as sources instead of one per direction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A round trip from which another pair's traffic on the same machine is
/// lost in it: at 1 ms, tens of µs of CPU contention are a few percent at
/// the very worst, while the µs paths of a lab on one host would double.
pub const SHORT_BELOW: Duration = Duration::from_millis(1);

/// One measured pair: nodes `a < b` (indices), and which ways it is
/// measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub a_to_b: bool,
    pub b_to_a: bool,
    /// Its round trip is below `SHORT_BELOW` (or unknown).
    pub short: bool,
}

impl Pair {
    fn touches(&self, other: &Pair) -> bool {
        self.a == other.a || self.a == other.b || self.b == other.a || self.b == other.b
    }

    /// The directions, source first.
    pub fn directions(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        if self.a_to_b {
            out.push((self.a, self.b));
        }
        if self.b_to_a {
            out.push((self.b, self.a));
        }
        out
    }
}

/// Slots of pairs, run one after another; the pairs of a slot at once.
/// Then the turns: one source and its short same-machine targets, alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    pub slots: Vec<Vec<Pair>>,
    pub turns: Vec<(usize, Vec<usize>)>,
}

impl Schedule {
    /// Pairs in slots (the turns' pairs are not counted).
    pub fn pairs(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    /// Measured directions, in slots and in turns.
    pub fn directed(&self) -> usize {
        self.measured().len()
    }

    /// Every (source, target) measured, slots first.
    pub fn measured(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = self
            .slots
            .iter()
            .flatten()
            .flat_map(Pair::directions)
            .collect();
        for (s, targets) in &self.turns {
            out.extend(targets.iter().map(|t| (*s, *t)));
        }
        out
    }

    /// Most pairs in one slot.
    pub fn concurrency(&self) -> usize {
        self.slots.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Builds the schedule for `n` nodes. `directed` lists (source, target)
/// measurements; `machine[i]` is node i's boot id when known; `short(a, b)`
/// says whether the pair's round trip is short (or unknown, which counts as
/// short).
pub fn tournament(
    n: usize,
    directed: &[(usize, usize)],
    machine: &[Option<String>],
    short: impl Fn(usize, usize) -> bool,
) -> Schedule {
    let mut pairs: Vec<Pair> = Vec::new();
    let mut on: BTreeMap<&str, usize> = BTreeMap::new();
    for m in machine.iter().flatten() {
        *on.entry(m.as_str()).or_default() += 1;
    }
    let crowded = |x: usize| {
        machine
            .get(x)
            .and_then(Option::as_deref)
            .is_some_and(|m| on.get(m).is_some_and(|k| *k > 1))
    };
    let mut turns: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut slotted = Vec::new();
    for &(s, t) in directed {
        if s == t || s >= n || t >= n {
            continue;
        }
        if (crowded(s) || crowded(t)) && short(s, t) {
            turns.entry(s).or_default().push(t);
        } else {
            slotted.push((s, t));
        }
    }
    let directed = slotted.as_slice();
    let wanted: BTreeSet<(usize, usize)> = directed.iter().copied().collect();
    let undirected: BTreeSet<(usize, usize)> = directed
        .iter()
        .filter(|(s, t)| s != t && *s < n && *t < n)
        .map(|&(s, t)| (s.min(t), s.max(t)))
        .collect();
    for (a, b) in undirected {
        pairs.push(Pair {
            a,
            b,
            a_to_b: wanted.contains(&(a, b)),
            b_to_a: wanted.contains(&(b, a)),
            short: short(a, b),
        });
    }
    pairs.sort_by_key(|p| (circle_round(n, p.a, p.b), p.a, p.b));
    let same_machine = |x: usize, y: usize| matches!((machine.get(x), machine.get(y)), (Some(Some(m)), Some(Some(o))) if m == o);
    let shares_machine = |p: &Pair, q: &Pair| {
        [p.a, p.b]
            .iter()
            .any(|&x| [q.a, q.b].iter().any(|&y| same_machine(x, y)))
    };
    let mut slots: Vec<Vec<Pair>> = Vec::new();
    for pair in pairs {
        let fits = |slot: &Vec<Pair>| {
            slot.iter()
                .all(|q| !pair.touches(q) && !((pair.short || q.short) && shares_machine(&pair, q)))
        };
        match slots.iter_mut().find(|s| fits(s)) {
            Some(slot) => slot.push(pair),
            None => slots.push(vec![pair]),
        }
    }
    Schedule {
        slots,
        turns: turns.into_iter().collect(),
    }
}

/// The round in which the circle method (node n − 1, or a bye for odd n,
/// fixed; the others rotating) pairs `a` and `b`, `a != b`.
fn circle_round(n: usize, a: usize, b: usize) -> usize {
    let m = if n % 2 == 0 { n } else { n + 1 };
    let last = m - 1;
    let rounds = m - 1;
    if a == last || b == last {
        // The fixed node meets the rotating node x with 2x = 2r, so r = x.
        let x = if a == last { b } else { a };
        return x % rounds;
    }
    // Rotating nodes a and b meet in the round r with a + b = 2r (mod m - 1).
    ((a + b) * (rounds + 1) / 2) % rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_pairs(n: usize) -> Vec<(usize, usize)> {
        (0..n)
            .flat_map(|s| (0..n).filter(move |&t| t != s).map(move |t| (s, t)))
            .collect()
    }

    fn assert_no_node_twice(s: &Schedule) {
        for (i, slot) in s.slots.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for p in slot {
                assert!(seen.insert(p.a), "slot {i}: node {} twice: {slot:?}", p.a);
                assert!(seen.insert(p.b), "slot {i}: node {} twice: {slot:?}", p.b);
            }
        }
    }

    #[test]
    fn the_full_matrix_takes_n_minus_one_slots_and_no_node_is_in_two_pairs() {
        for n in 2..=12 {
            let machines = vec![None; n];
            let s = tournament(n, &all_pairs(n), &machines, |_, _| false);
            assert_no_node_twice(&s);
            let want = if n % 2 == 0 { n - 1 } else { n };
            assert_eq!(s.slots.len(), want, "n = {n}: {s:?}");
            assert_eq!(s.pairs(), n * (n - 1) / 2);
            assert_eq!(s.directed(), n * (n - 1));
            assert!(s.slots.iter().flatten().all(|p| p.a_to_b && p.b_to_a));
        }
    }

    #[test]
    fn short_paths_of_one_machine_never_overlap_but_long_ones_do() {
        // Oslo 0, 1 and Frankfurt 2, 3, all on one host: in-region pairs are
        // µs, cross-region ones 26 ms.
        let machines = vec![Some("host".to_string()); 4];
        let region = |i: usize| i / 2;
        let short = |a: usize, b: usize| region(a) == region(b);
        let s = tournament(4, &all_pairs(4), &machines, short);
        assert_no_node_twice(&s);
        assert!(s.slots.iter().flatten().all(|p| !p.short), "{s:?}");
        assert_eq!(s.slots.len(), 2, "{s:?}");
        assert!(s.slots.iter().all(|s| s.len() == 2), "{s:?}");
        // The in-region directions run in turns of their own, one at a time.
        assert_eq!(
            s.turns,
            vec![(0, vec![1]), (1, vec![0]), (2, vec![3]), (3, vec![2])]
        );
        assert_eq!(s.directed(), 12);
    }

    #[test]
    fn short_paths_on_different_machines_overlap() {
        let machines: Vec<Option<String>> = (0..4).map(|i| Some(format!("m{i}"))).collect();
        let s = tournament(4, &all_pairs(4), &machines, |_, _| true);
        assert_no_node_twice(&s);
        assert_eq!(s.slots.len(), 3);
        assert_eq!(s.concurrency(), 2);
    }

    #[test]
    fn peers_pairs_pack_into_few_slots_with_every_direction_kept() {
        use super::super::peers;
        let names: Vec<String> = (0..100).map(|i| format!("node-{i}")).collect();
        let mut directed = Vec::new();
        for (s, source) in names.iter().enumerate() {
            let others: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| n != source)
                .collect();
            for peer in peers::choose(source, &others, Some(5)) {
                let t = names.iter().position(|n| n == peer).unwrap();
                directed.push((s, t));
            }
        }
        let machines: Vec<Option<String>> =
            (0..100).map(|i| Some(format!("m{}", i % 10))).collect();
        let short = |a: usize, b: usize| (a + b) % 3 == 0;
        let s = tournament(100, &directed, &machines, short);
        assert_no_node_twice(&s);
        assert_eq!(s.directed(), 500);
        let mut measured = s.measured();
        measured.sort_unstable();
        directed.sort_unstable();
        assert_eq!(measured, directed);
        for slot in &s.slots {
            for p in slot.iter().filter(|p| p.short) {
                for q in slot.iter().filter(|q| *q != p) {
                    let on = |x: usize| machines[x].clone();
                    let mine = [on(p.a), on(p.b)];
                    assert!(
                        !mine.contains(&on(q.a)) && !mine.contains(&on(q.b)),
                        "short pair {p:?} overlaps {q:?} on a shared machine"
                    );
                }
            }
        }
        assert!(s.slots.len() < 100, "{} slots", s.slots.len());
        for (src, targets) in &s.turns {
            assert!(
                targets.iter().all(|t| short(*src, *t)),
                "{src} -> {targets:?}"
            );
        }
    }

    #[test]
    fn one_machine_with_only_short_paths_takes_one_turn_per_source() {
        let machines = vec![Some("host".to_string()); 30];
        let s = tournament(30, &all_pairs(30), &machines, |_, _| true);
        assert!(s.slots.is_empty(), "{s:?}");
        assert_eq!(s.turns.len(), 30);
        assert_eq!(s.directed(), 30 * 29);
    }
}
