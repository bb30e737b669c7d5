//! Every target of one kind measured in the same loop, exchange by exchange,
//! so that the native and the overlay path (and every target) see the same
//! machine: a change of load lands in both, not in their difference. The
//! order alternates each round so no target always goes first, and every
//! target's answered samples are also summarised per block of rounds, the
//! matched units the overlay overhead's paired bootstrap resamples.

use std::time::{Duration, Instant};

use super::{pace, record, Measured, Params};
use crate::context::CancelToken;

/// Rounds per matched block: enough samples for a stable block median,
/// small enough that a default run (1,000) gives 40 blocks to resample.
pub const BLOCK_ROUNDS: u64 = 25;

/// One target's connection state for one kind of exchange.
pub(crate) trait Session {
    /// Why this target cannot go on (path down, too many errors).
    fn given_up(&self, m: &Measured) -> Option<String>;
    /// One exchange; its round-trip time when answered in time. Errors, late
    /// replies and duplicates are counted into `m`.
    fn exchange(&mut self, seq: u64, m: &mut Measured) -> Option<Duration>;
}

/// A target's session, or why it could not be opened.
pub(crate) type Opened = Result<Box<dyn Session + Send>, String>;

/// Runs rounds `from_seq..params.warmup + params.count` (the rounds before
/// `from_seq` were spent elsewhere, see `pipeline`); in each, one exchange
/// with every target still going, on the paced schedule. The whole loop gets
/// `time_limit` per target. Cancellation stops it with every measurement
/// marked; the caller turns that into `Cancelled`.
pub(crate) fn measure(
    sessions: Vec<Opened>,
    params: &Params,
    from_seq: u64,
    cancel: &CancelToken,
) -> Vec<Measured> {
    let (mut live, mut measured) = open_all(sessions);
    let n = live.len();
    let mut block: Vec<Vec<u64>> = vec![Vec::with_capacity(BLOCK_ROUNDS as usize); n];
    let interval = params.interval();
    let warmup = u64::from(params.warmup);
    let total = warmup + u64::from(params.count);
    let start = Instant::now();
    let deadline = start + params.time_limit.0.saturating_mul(n.max(1) as u32);

    for seq in from_seq..total {
        if live.iter().all(Option::is_none) {
            break;
        }
        if stop_all(&mut live, &mut measured, params, deadline, cancel) {
            break;
        }
        if !pace(start, interval, seq - from_seq, cancel) {
            continue;
        }
        let timed = seq >= warmup;
        exchange_round(&mut live, &mut measured, seq, seq, |i, m, answered| {
            if timed {
                m.sent += 1;
                if let Some(rtt) = answered {
                    let ns = rtt.as_nanos() as u64;
                    m.replied += 1;
                    record(m, ns, interval);
                    block[i].push(ns);
                }
            }
        });
        if timed && (seq - warmup + 1) % BLOCK_ROUNDS == 0 {
            close_blocks(&mut block, &mut measured);
        }
    }
    if block.iter().any(|b| !b.is_empty()) {
        close_blocks(&mut block, &mut measured);
    }
    measured
}

/// One exchange (sequence number `seq`) with every target still going,
/// the order reversed every other round so that no target always goes
/// first; `answered(i, m, rtt)` sees each exchange's outcome. A session
/// that has given up is ended with its reason instead.
pub(crate) fn exchange_round(
    live: &mut Live,
    measured: &mut [Measured],
    round: u64,
    seq: u64,
    mut answered: impl FnMut(usize, &mut Measured, Option<Duration>),
) {
    let n = live.len();
    for j in 0..n {
        let i = if round % 2 == 0 { j } else { n - 1 - j };
        let (Some(session), m) = (live[i].as_mut(), &mut measured[i]) else {
            continue;
        };
        if let Some(why) = session.given_up(m) {
            m.stopped_early = Some(why);
            live[i] = None;
            continue;
        }
        let rtt = session.exchange(seq, m);
        answered(i, m, rtt);
    }
}

/// The live sessions, and a measurement per target (marked with the reason
/// for a session that could not be opened).
pub(crate) type Live = Vec<Option<Box<dyn Session + Send>>>;

pub(crate) fn open_all(sessions: Vec<Opened>) -> (Live, Vec<Measured>) {
    let mut measured: Vec<Measured> = sessions.iter().map(|_| Measured::new()).collect();
    let mut live: Live = Vec::with_capacity(sessions.len());
    for (session, m) in sessions.into_iter().zip(&mut measured) {
        match session {
            Ok(s) => live.push(Some(s)),
            Err(why) => {
                m.stopped_early = Some(why);
                live.push(None);
            }
        }
    }
    (live, measured)
}

/// On cancellation or past the deadline, ends every live session with the
/// reason; true when the loop must stop.
pub(crate) fn stop_all(
    live: &mut Live,
    measured: &mut [Measured],
    params: &Params,
    deadline: Instant,
    cancel: &CancelToken,
) -> bool {
    let why = if cancel.is_cancelled() {
        "cancelled".to_string()
    } else if Instant::now() >= deadline {
        format!("time limit {} per target reached", params.time_limit)
    } else {
        return false;
    };
    for (slot, m) in live.iter_mut().zip(measured) {
        if slot.take().is_some() {
            m.stopped_early = Some(format!("{why} after {} of {}", m.sent, params.count));
        }
    }
    true
}

/// Ends a block for every target: its median, or None when it had no
/// answered exchange (a block index means the same rounds for all targets).
pub(crate) fn close_blocks(block: &mut [Vec<u64>], measured: &mut [Measured]) {
    for (samples, m) in block.iter_mut().zip(measured) {
        m.block_medians.push(median(samples));
        samples.clear();
    }
}

pub(crate) fn median(samples: &mut [u64]) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mid = samples.len() / 2;
    let (_, m, _) = samples.select_nth_unstable(mid);
    Some(*m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target answering in a fixed time, or failing every exchange.
    struct Fixed(Option<Duration>);

    impl Session for Fixed {
        fn given_up(&self, _m: &Measured) -> Option<String> {
            None
        }
        fn exchange(&mut self, _seq: u64, m: &mut Measured) -> Option<Duration> {
            if self.0.is_none() {
                m.errors += 1;
            }
            self.0
        }
    }

    #[test]
    fn targets_share_rounds_and_blocks_line_up() {
        let params = Params {
            count: 60,
            warmup: 5,
            ..Params::default()
        };
        let sessions: Vec<Opened> = vec![
            Ok(Box::new(Fixed(Some(Duration::from_micros(10))))),
            Ok(Box::new(Fixed(None))),
            Err("cannot connect".into()),
        ];
        let m = measure(sessions, &params, 0, &CancelToken::new());
        assert_eq!((m[0].sent, m[0].replied), (60, 60));
        assert_eq!((m[1].sent, m[1].replied, m[1].errors), (60, 0, 65));
        // 60 timed rounds: two full blocks and a partial one, for everyone.
        assert_eq!(m[0].block_medians, vec![Some(10_000); 3]);
        assert_eq!(m[1].block_medians, vec![None; 3]);
        assert_eq!(m[2].stopped_early.as_deref(), Some("cannot connect"));
        assert_eq!(m[2].sent, 0);
    }

    #[test]
    fn cancellation_marks_every_live_target() {
        let cancel = CancelToken::new();
        cancel.cancel();
        let sessions: Vec<Opened> = vec![Ok(Box::new(Fixed(Some(Duration::from_micros(1)))))];
        let m = measure(sessions, &Params::default(), 0, &cancel);
        assert!(m[0].stopped_early.as_deref().is_some_and(|w| w.starts_with("cancelled")));
    }
}
