//! What the writer loops record: every write and every fdatasync into
//! histograms, a per-second p99 and sync count, the pacing schedule, and the
//! reason the loop stopped. Nothing here allocates per sample.

use std::time::{Duration, Instant};

use crate::context::CancelToken;
use crate::error::ProbeError;
use crate::histogram::LatencyHistogram;

use super::guard::Prealloc;
use super::NAME;

/// Longest sleep between two polls of the cancel token while paced.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// Why a writer loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// All of `size` was written.
    Size,
    /// The user's `duration` elapsed first.
    Duration,
    /// No `duration` was given and the default time limit elapsed first.
    TimeLimit,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Size => "size",
            StopReason::Duration => "duration",
            StopReason::TimeLimit => "time-limit",
        }
    }
}

/// What a writer loop reports beyond the recorder.
#[derive(Debug)]
pub struct Outcome {
    pub stopped_by: StopReason,
    pub prealloc: Prealloc,
    /// Files written (WAL segments; 1 for fio-etcd).
    pub segments: u64,
    /// etcd-wal: each segment cut (truncate, sync, take the prepared next
    /// segment, rename, sync the directory).
    pub rollover: Option<LatencyHistogram>,
    /// etcd-wal with the backend on: its commits.
    pub backend: Option<super::backend::Measured>,
}

/// A steady schedule: op i is due at start + i x interval. A late op is sent
/// at once (the schedule does not slip) and its latency is recorded with
/// coordinated-omission correction.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Instant,
    pub late: u64,
}

impl Pacer {
    pub fn new(rate_per_sec: f64, start: Instant) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate_per_sec),
            next: start,
            late: 0,
        }
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval.as_nanos() as u64
    }

    /// Takes the op due at `next` (called once `now >= next`).
    fn take_turn(&mut self, now: Instant) {
        if now - self.next > self.interval {
            self.late += 1;
        }
        self.next += self.interval;
    }
}

/// Histograms, series and counters of one run.
#[derive(Debug)]
pub struct Recorder {
    pub fdatasync: LatencyHistogram,
    /// Paced runs: each fdatasync as it took, without the back-filled
    /// samples; what etcd's own wal_fsync_duration_seconds counts.
    pub fdatasync_each: Option<LatencyHistogram>,
    pub write: LatencyHistogram,
    pub per_second_p99: Vec<(f64, f64)>,
    pub per_second_syncs: Vec<(f64, f64)>,
    pub pacer: Option<Pacer>,
    pub syncs: u64,
    pub writes: u64,
    pub bytes: u64,
    /// Set when the first op starts; syncs per second count from here.
    pub started: Instant,
    pub ended: Instant,
    second: LatencyHistogram,
    second_index: u64,
    second_syncs: u64,
    limit: Duration,
    deadline: Instant,
    deadline_reason: StopReason,
}

impl Recorder {
    /// `limit` bounds the run; `user_duration` says whether it came from the
    /// user (`duration`) or is the default limit.
    pub fn new(rate: Option<f64>, limit: Duration, user_duration: bool) -> Self {
        let now = Instant::now();
        // Capacity for every second the run may last: no growth while timing.
        let seconds = (limit.as_secs() + 2) as usize;
        Recorder {
            fdatasync: LatencyHistogram::new(),
            fdatasync_each: rate.map(|_| LatencyHistogram::new()),
            write: LatencyHistogram::new(),
            per_second_p99: Vec::with_capacity(seconds),
            per_second_syncs: Vec::with_capacity(seconds),
            pacer: rate.map(|r| Pacer::new(r, now)),
            syncs: 0,
            writes: 0,
            bytes: 0,
            started: now,
            ended: now,
            second: LatencyHistogram::new(),
            second_index: 0,
            second_syncs: 0,
            limit,
            deadline: now + limit,
            deadline_reason: if user_duration {
                StopReason::Duration
            } else {
                StopReason::TimeLimit
            },
        }
    }

    /// Restarts the clocks just before the first op (setup is not measured).
    pub fn start(&mut self) {
        let now = Instant::now();
        self.started = now;
        self.ended = now;
        self.deadline = now + self.limit;
        if let Some(p) = self.pacer.as_mut() {
            p.next = now;
        }
    }

    /// Called before each op: Err when cancelled, Some(reason) when the time
    /// bound is reached; otherwise waits for the op's turn when paced.
    pub fn before_op(&mut self, cancel: &CancelToken) -> Result<Option<StopReason>, ProbeError> {
        loop {
            cancel.check(NAME)?;
            let now = Instant::now();
            if now >= self.deadline {
                return Ok(Some(self.deadline_reason));
            }
            let Some(pacer) = self.pacer.as_mut() else {
                return Ok(None);
            };
            if now >= pacer.next {
                pacer.take_turn(now);
                return Ok(None);
            }
            // Sleep in slices so a slow rate still notices a cancel promptly.
            std::thread::sleep((pacer.next - now).min(SLEEP_SLICE));
        }
    }

    pub fn record_write(&mut self, ns: u64, bytes: usize) {
        match &self.pacer {
            Some(p) => self.write.record_paced(ns, p.interval_ns()),
            None => self.write.record(ns),
        }
        self.writes += 1;
        self.bytes += bytes as u64;
    }

    /// Records one fdatasync that completed at `done`.
    pub fn record_sync(&mut self, ns: u64, done: Instant) {
        match &self.pacer {
            Some(p) => self.fdatasync.record_paced(ns, p.interval_ns()),
            None => self.fdatasync.record(ns),
        }
        if let Some(each) = self.fdatasync_each.as_mut() {
            each.record(ns);
        }
        self.syncs += 1;
        self.ended = done;
        let index = done.saturating_duration_since(self.started).as_secs();
        if index != self.second_index {
            self.close_second();
            self.second_index = index;
        }
        self.second.record(ns);
        self.second_syncs += 1;
    }

    fn close_second(&mut self) {
        if self.second_syncs > 0 {
            let x = self.second_index as f64;
            self.per_second_p99
                .push((x, self.second.value_at_quantile(0.99) as f64));
            self.per_second_syncs.push((x, self.second_syncs as f64));
        }
        self.second.reset();
        self.second_syncs = 0;
    }

    /// Closes the last (possibly partial) second.
    pub fn finish(&mut self) {
        self.close_second();
    }

    pub fn elapsed(&self) -> Duration {
        self.ended.saturating_duration_since(self.started)
    }

    /// Syncs per second over the measured span (first op to last sync).
    pub fn syncs_per_sec(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.syncs as f64 / secs
        } else {
            0.0
        }
    }
}

/// Nanoseconds between two instants (saturating).
pub fn ns_between(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_series_split_on_second_boundaries() {
        let mut r = Recorder::new(None, Duration::from_secs(10), false);
        r.start();
        let t0 = r.started;
        for i in 0..10u64 {
            r.record_sync(1_000 * (i + 1), t0 + Duration::from_millis(100 * i));
        }
        r.record_sync(5_000_000, t0 + Duration::from_millis(2500));
        r.finish();
        assert_eq!(r.syncs, 11);
        assert_eq!(r.per_second_syncs, vec![(0.0, 10.0), (2.0, 1.0)]);
        assert_eq!(r.per_second_p99[0].0, 0.0);
        assert!((9_990.0..=10_010.0).contains(&r.per_second_p99[0].1));
        assert!((r.syncs_per_sec() - 11.0 / 2.5).abs() < 1e-9);
    }

    #[test]
    fn time_bound_and_cancel_stop_the_loop() {
        let mut r = Recorder::new(None, Duration::ZERO, true);
        r.start();
        let cancel = CancelToken::new();
        assert_eq!(r.before_op(&cancel).unwrap(), Some(StopReason::Duration));
        let mut r = Recorder::new(None, Duration::from_secs(60), false);
        r.start();
        assert_eq!(r.before_op(&cancel).unwrap(), None);
        cancel.cancel();
        assert!(matches!(
            r.before_op(&cancel),
            Err(ProbeError::Cancelled { .. })
        ));
    }

    #[test]
    fn a_slow_pace_still_notices_cancel_promptly() {
        let mut r = Recorder::new(Some(0.01), Duration::from_secs(600), false);
        r.start();
        let cancel = CancelToken::new().with_deadline(Instant::now() + Duration::from_millis(200));
        assert_eq!(
            r.before_op(&cancel).unwrap(),
            None,
            "the first op is due at once"
        );
        let t0 = Instant::now();
        assert!(r.before_op(&cancel).is_err(), "the next op is 100 s away");
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn pacing_keeps_a_steady_schedule() {
        let mut r = Recorder::new(Some(200.0), Duration::from_secs(60), false);
        r.start();
        let cancel = CancelToken::new();
        let t0 = Instant::now();
        for _ in 0..21 {
            r.before_op(&cancel).unwrap();
        }
        // 20 intervals of 5 ms: at least 100 ms, whatever the sleep overshoot.
        assert!(
            t0.elapsed() >= Duration::from_millis(99),
            "{:?}",
            t0.elapsed()
        );
        r.record_sync(20_000_000, Instant::now());
        // 20 ms at a 5 ms interval back-fills 15, 10 and 5 ms samples.
        assert_eq!(r.fdatasync.len(), 4);
        // Each sync as it took, as etcd's own histogram counts it.
        let each = r.fdatasync_each.as_ref().unwrap();
        assert_eq!((each.len(), each.max()), (1, r.fdatasync.max()));
    }

    #[test]
    fn back_to_back_runs_keep_one_histogram() {
        let mut r = Recorder::new(None, Duration::from_secs(60), false);
        r.start();
        r.record_sync(20_000_000, Instant::now());
        assert_eq!(r.fdatasync.len(), 1);
        assert!(r.fdatasync_each.is_none());
    }
}
