//! The Raft commit of one put, sampled from measured distributions.
//!
//! The leader appends the entry to its WAL (one fdatasync) while it sends
//! the entry to every follower; each follower persists it (its own
//! fdatasync) and answers. The entry commits when a quorum of members has
//! persisted it, the leader counted among them: with `n` members the
//! leader's sync and the `(n/2)`-th fastest follower's round trip plus sync,
//! whichever ends last. A Monte Carlo draw of every term from its recorded
//! histogram gives the commit's distribution, including the tails two
//! independent slow events make together.

use infraqual_probes::LatencyHistogram;

use crate::compare::sampler::{Distribution, SplitMix64};

/// One follower as seen from a given leader: the round trip between them
/// and the follower's own fdatasync.
pub struct FollowerTerms<'a> {
    pub round_trip: &'a Distribution,
    pub fdatasync: &'a Distribution,
}

/// Members that must have persisted an entry before it commits.
pub fn quorum(members: usize) -> usize {
    members / 2 + 1
}

/// One commit drawn at random: `max(leader sync, k-th fastest follower
/// round trip + sync)` with k = quorum - 1 followers.
pub fn draw_commit(
    leader_sync: &Distribution,
    followers: &[FollowerTerms<'_>],
    rng: &mut SplitMix64,
    scratch: &mut Vec<u64>,
) -> u64 {
    let leader = leader_sync.values[leader_sync.draw(rng)];
    scratch.clear();
    for f in followers {
        let rtt = f.round_trip.values[f.round_trip.draw(rng)];
        let sync = f.fdatasync.values[f.fdatasync.draw(rng)];
        scratch.push(rtt.saturating_add(sync));
    }
    let needed = quorum(followers.len() + 1) - 1;
    if needed == 0 {
        return leader;
    }
    scratch.sort_unstable();
    leader.max(scratch[needed - 1])
}

/// `samples` puts drawn into a histogram: each a commit plus, when etcd's
/// own request time was measured, one draw of it (it runs before and after
/// the commit, in series with it).
pub fn simulate(
    leader_sync: &Distribution,
    followers: &[FollowerTerms<'_>],
    request_time: Option<&Distribution>,
    samples: u32,
    seed: u64,
) -> LatencyHistogram {
    let mut rng = SplitMix64::new(seed);
    let mut scratch = Vec::with_capacity(followers.len());
    let mut hist = LatencyHistogram::new();
    for _ in 0..samples {
        let commit = draw_commit(leader_sync, followers, &mut rng, &mut scratch);
        let request = request_time.map_or(0, |d| d.values[d.draw(&mut rng)]);
        hist.record(commit.saturating_add(request));
    }
    hist
}
