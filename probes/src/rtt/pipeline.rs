//! Several exchanges in flight on a long path. One exchange at a time costs
//! a full round trip per sample: 500 samples of a 26 ms path take 13 s per
//! kind and path. With `pipeline = W`, when the warm-up rounds show a round
//! trip of at least `LONG_ROUND`, W lanes measure side by side, each one
//! exchange at a time on its own socket (UDP) or connection (TCP), the lanes
//! offset in time so that an exchange starts every `period / W`. Each lane
//! is paced at `period`; a lane whose reply is late sends its next exchange
//! late, and that lane's samples are corrected for coordinated omission
//! against `period` as every paced loop is. Sequence numbers stay global
//! (lane k sends warmup + k, + k + W, ...), so late and lost replies are
//! counted as one in flight counts them and the matched blocks line up.
//!
//! A short path (the µs paths of a lab on one host) keeps today's loop:
//! one exchange in flight, no threads beside the timing thread.

use std::time::{Duration, Instant};

use super::interleave::{self, median, Opened, BLOCK_ROUNDS};
use super::{pace, Measured, Params};
use crate::context::CancelToken;

/// Round trips (one round: one exchange per target) from which lanes pay.
pub const LONG_ROUND: Duration = Duration::from_millis(1);
/// Without a rate, a lane's period is the warm-up round times this, so a
/// round trip somewhat above the warm-up's median does not make the lane
/// late.
const PERIOD_MARGIN: f64 = 1.25;
/// Warm-up rounds that decide the mode, whatever `warmup` says.
const MIN_DECIDING_ROUNDS: u64 = 3;

/// How one kind's loop ran.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    OneInFlight,
    Pipelined {
        lanes: u32,
        /// Median time of one warm-up round (every target once).
        round: Duration,
        /// Each lane sends one round per period.
        period: Duration,
    },
}

/// Measures every target of one kind. `open` makes one session per target
/// (one call per lane).
pub(crate) fn measure(
    open: &(dyn Fn() -> Vec<Opened> + Sync),
    params: &Params,
    cancel: &CancelToken,
) -> (Vec<Measured>, Mode) {
    if params.pipeline <= 1 {
        return (
            interleave::measure(open(), params, 0, cancel),
            Mode::OneInFlight,
        );
    }
    let mut sessions = open();
    let warmup = u64::from(params.warmup).max(MIN_DECIDING_ROUNDS);
    let round = warm_up(&mut sessions, warmup, cancel);
    let long = round.filter(|r| *r >= LONG_ROUND);
    let Some(round) = long else {
        let params = Params {
            warmup: warmup as u32,
            ..params.clone()
        };
        return (
            interleave::measure(sessions, &params, warmup, cancel),
            Mode::OneInFlight,
        );
    };
    let lanes = params.pipeline;
    let period = match params.rate {
        Some(rate) => Duration::from_secs_f64(f64::from(lanes) / rate),
        None => round.mul_f64(PERIOD_MARGIN),
    };
    let measured = run_lanes(sessions, open, params, warmup, period, cancel);
    (
        measured,
        Mode::Pipelined {
            lanes,
            round,
            period,
        },
    )
}

/// Untimed rounds, one exchange in flight: the median round's duration
/// (None when no round was answered by every live target).
fn warm_up(sessions: &mut [Opened], rounds: u64, cancel: &CancelToken) -> Option<Duration> {
    let mut scratch = Measured::new();
    let mut times = Vec::new();
    for seq in 0..rounds {
        if cancel.is_cancelled() {
            return None;
        }
        let mut round = Duration::ZERO;
        let mut answered_all = true;
        for session in sessions.iter_mut().flatten() {
            match session.exchange(seq, &mut scratch) {
                Some(rtt) => round += rtt,
                None => answered_all = false,
            }
        }
        if answered_all {
            times.push(round.as_nanos() as u64);
        }
    }
    median(&mut times).map(Duration::from_nanos)
}

/// One lane's share: per target, what it measured and its samples per block.
struct Lane {
    measured: Vec<Measured>,
    blocks: Vec<Vec<Vec<u64>>>,
}

fn run_lanes(
    first: Vec<Opened>,
    open: &(dyn Fn() -> Vec<Opened> + Sync),
    params: &Params,
    warmup: u64,
    period: Duration,
    cancel: &CancelToken,
) -> Vec<Measured> {
    let lanes = u64::from(params.pipeline);
    let n = first.len();
    let start = Instant::now();
    let lane_results: Vec<Lane> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut first = Some(first);
        for k in 0..lanes {
            let sessions = first.take();
            let handle = std::thread::Builder::new()
                .name(format!("iq-rtt-lane-{k}"))
                .spawn_scoped(scope, move || {
                    let sessions = sessions.unwrap_or_else(open);
                    lane(sessions, params, warmup, k, period, start, cancel)
                });
            handles.push(handle);
        }
        handles
            .into_iter()
            .map(|h| match h.map(|h| h.join()) {
                Ok(Ok(lane)) => lane,
                _ => Lane {
                    measured: (0..n)
                        .map(|_| {
                            let mut m = Measured::new();
                            m.stopped_early = Some("a pipeline lane failed".into());
                            m
                        })
                        .collect(),
                    blocks: vec![Vec::new(); n],
                },
            })
            .collect()
    });
    merge(lane_results, n)
}

/// Lane `k` of the rounds after warm-up: sequence numbers warmup + k,
/// warmup + k + lanes, ...; its round j is due at start + (k + j·lanes) ·
/// period / lanes.
fn lane(
    sessions: Vec<Opened>,
    params: &Params,
    warmup: u64,
    k: u64,
    period: Duration,
    start: Instant,
    cancel: &CancelToken,
) -> Lane {
    let n = sessions.len();
    let lanes = u64::from(params.pipeline);
    let (mut live, mut measured) = interleave::open_all(sessions);
    let count = u64::from(params.count);
    let blocks_total = count.div_ceil(BLOCK_ROUNDS) as usize;
    let mut blocks: Vec<Vec<Vec<u64>>> = vec![vec![Vec::new(); blocks_total]; n];
    let offset = period / params.pipeline.max(1);
    let deadline = start + params.time_limit.0.saturating_mul(n.max(1) as u32);
    let period_ns = period.as_nanos() as u64;
    let mut timed = k;
    let mut round = 0u64;
    while timed < count {
        if live.iter().all(Option::is_none) {
            break;
        }
        if interleave::stop_all(&mut live, &mut measured, params, deadline, cancel) {
            break;
        }
        if !pace(start, Some(offset), timed, cancel) {
            continue;
        }
        let seq = warmup + timed;
        interleave::exchange_round(&mut live, &mut measured, round, seq, |i, m, answered| {
            m.sent += 1;
            if let Some(rtt) = answered {
                let ns = rtt.as_nanos() as u64;
                m.replied += 1;
                m.hist.record_paced(ns, period_ns);
                if let Some(block) = blocks[i].get_mut((timed / BLOCK_ROUNDS) as usize) {
                    block.push(ns);
                }
            }
        });
        timed += lanes;
        round += 1;
    }
    Lane { measured, blocks }
}

/// The lanes' counts and histograms added per target, and each block's
/// median over the samples every lane contributed to it.
fn merge(lanes: Vec<Lane>, n: usize) -> Vec<Measured> {
    let mut out: Vec<Measured> = (0..n).map(|_| Measured::new()).collect();
    let mut blocks: Vec<Vec<Vec<u64>>> = vec![Vec::new(); n];
    for lane in lanes {
        for (i, (m, lane_blocks)) in lane.measured.into_iter().zip(lane.blocks).enumerate() {
            let o = &mut out[i];
            // Identical histogram settings: merging cannot fail; a failure
            // would only lose that lane's samples, which `sent` still shows.
            let _ = o.hist.merge(&m.hist);
            o.sent += m.sent;
            o.replied += m.replied;
            o.late += m.late;
            o.duplicates += m.duplicates;
            o.errors += m.errors;
            if o.stopped_early.is_none() {
                o.stopped_early = m.stopped_early;
            }
            if blocks[i].len() < lane_blocks.len() {
                blocks[i].resize(lane_blocks.len(), Vec::new());
            }
            for (b, samples) in lane_blocks.into_iter().enumerate() {
                blocks[i][b].extend(samples);
            }
        }
    }
    for (o, target_blocks) in out.iter_mut().zip(blocks) {
        o.block_medians = target_blocks
            .into_iter()
            .map(|mut samples| median(&mut samples))
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtt::interleave::Session;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A target answering in a fixed time after really waiting it, and
    /// counting the sequence numbers it saw.
    struct Sleeper {
        rtt: Duration,
        seqs: Arc<AtomicU64>,
        max_seq: Arc<AtomicU64>,
    }

    impl Session for Sleeper {
        fn given_up(&self, _m: &Measured) -> Option<String> {
            None
        }
        fn exchange(&mut self, seq: u64, _m: &mut Measured) -> Option<Duration> {
            std::thread::sleep(self.rtt);
            self.seqs.fetch_add(1, Ordering::Relaxed);
            self.max_seq.fetch_max(seq, Ordering::Relaxed);
            Some(self.rtt)
        }
    }

    fn opener(rtt: Duration, seqs: Arc<AtomicU64>, max_seq: Arc<AtomicU64>) -> impl Fn() -> Vec<Opened> + Sync {
        move || {
            vec![Ok(Box::new(Sleeper {
                rtt,
                seqs: Arc::clone(&seqs),
                max_seq: Arc::clone(&max_seq),
            }) as Box<dyn Session + Send>)]
        }
    }

    #[test]
    fn a_long_path_runs_in_lanes_and_every_exchange_is_counted_once() {
        let seqs = Arc::new(AtomicU64::new(0));
        let max_seq = Arc::new(AtomicU64::new(0));
        let open = opener(Duration::from_millis(4), Arc::clone(&seqs), Arc::clone(&max_seq));
        let params = Params {
            count: 60,
            warmup: 3,
            pipeline: 4,
            ..Params::default()
        };
        let (m, mode) = measure(&open, &params, &CancelToken::new());
        assert!(matches!(mode, Mode::Pipelined { lanes: 4, .. }), "{mode:?}");
        assert_eq!((m[0].sent, m[0].replied), (60, 60));
        assert_eq!(seqs.load(Ordering::Relaxed), 63, "3 warm-up and 60 timed");
        assert_eq!(max_seq.load(Ordering::Relaxed), 62, "global sequence numbers");
        // 60 rounds: two full blocks and a partial one, as one lane makes.
        assert_eq!(m[0].block_medians.len(), 3);
        assert!(m[0].block_medians.iter().all(Option::is_some));
    }

    #[test]
    fn a_short_path_keeps_one_exchange_in_flight() {
        let seqs = Arc::new(AtomicU64::new(0));
        let max_seq = Arc::new(AtomicU64::new(0));
        let open = opener(Duration::from_micros(10), Arc::clone(&seqs), max_seq);
        let params = Params {
            count: 50,
            warmup: 5,
            pipeline: 8,
            ..Params::default()
        };
        let (m, mode) = measure(&open, &params, &CancelToken::new());
        assert_eq!(mode, Mode::OneInFlight);
        assert_eq!((m[0].sent, m[0].replied), (50, 50));
        assert_eq!(seqs.load(Ordering::Relaxed), 55, "warm-up rounds are not repeated");
    }
}
