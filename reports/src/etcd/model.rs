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

/// etcd's `--backend-batch-interval` default (100 ms, etcd 3.4
/// mvcc/backend `defaultBatchInterval`): the wait between the end of one
/// backend commit and the start of the next.
pub const BACKEND_BATCH_INTERVAL_NS: u64 = 100_000_000;
/// fdatasyncs in one bbolt commit: the dirty pages, then the meta page.
pub const BACKEND_COMMIT_SYNCS: usize = 2;

/// Where the wait for the leader's backend commit is drawn from.
#[derive(Clone, Copy)]
pub enum BackendStall<'a> {
    /// The leader's own applies, as the fsync probe's etcd-wal mode timed
    /// them (`backend_apply_wait`): from each synced batch's WAL fdatasync
    /// to the batch lock a commit holds. Drawn as it is, zeros included. A
    /// commit's own duration over-states it where the disk serves one sync
    /// at a time: on the 12 ms slow leader etcd's commits took 32.6 ms
    /// while its stalled puts waited 22-26 ms, the part of a commit queued
    /// behind the put's own WAL sync being over before the put could apply.
    Measured(&'a Distribution),
    /// Without that measurement: a commit of [`BACKEND_COMMIT_SYNCS`] draws
    /// of the leader's WAL fdatasync, every [`BACKEND_BATCH_INTERVAL_NS`],
    /// and the apply landing at a uniform moment of that cycle.
    FromSyncs(&'a Distribution),
}

/// How long one put's apply waits for the leader's backend commit. The
/// commit holds the batch transaction's lock while bbolt writes and syncs,
/// and the apply of a put needs that lock.
pub fn draw_backend_stall(stall: BackendStall<'_>, rng: &mut SplitMix64) -> u64 {
    match stall {
        BackendStall::Measured(waits) => waits.values[waits.draw(rng)],
        BackendStall::FromSyncs(sync) => {
            let commit: u64 = (0..BACKEND_COMMIT_SYNCS)
                .map(|_| sync.values[sync.draw(rng)])
                .fold(0, u64::saturating_add);
            let cycle = BACKEND_BATCH_INTERVAL_NS.saturating_add(commit);
            let at = (rng.next_f64() * cycle as f64) as u64;
            commit.saturating_sub(at)
        }
    }
}

/// `samples` puts drawn into a histogram. Without etcd's request time, each
/// is the commit alone. With it, each is a whole put: the commit, one draw
/// of the request time (it runs before and after the commit, in series
/// with it) and the wait for the leader's backend commit at the apply.
pub fn simulate(
    leader_sync: &Distribution,
    leader_backend: BackendStall<'_>,
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
        let rest = request_time.map_or(0, |d| {
            d.values[d.draw(&mut rng)].saturating_add(draw_backend_stall(leader_backend, &mut rng))
        });
        hist.record(commit.saturating_add(rest));
    }
    hist
}
