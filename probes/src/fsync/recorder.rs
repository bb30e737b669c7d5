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
/// coordinated-omission correction. A sequential client's schedule slips
/// instead: one client never sends the puts it was late for in a burst.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Instant,
    slips: bool,
    pub late: u64,
}

impl Pacer {
    pub fn new(rate_per_sec: f64, start: Instant) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate_per_sec),
            next: start,
            slips: false,
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

    /// A sequential client ready only at `ready`, past its op's due time
    /// (it was waiting for its last put): that op is due now and the
    /// schedule continues from it. Called before the wait for the turn, so
    /// a sleep's overshoot never moves the schedule.
    fn slip_to(&mut self, ready: Instant) {
        if self.slips && ready > self.next {
            if ready - self.next > self.interval {
                self.late += 1;
            }
            self.next = ready;
        }
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
    start_at: Option<Instant>,
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
            start_at: None,
        }
    }

    /// A sequential client's pace: when an op is late the schedule slips
    /// rather than catching up.
    pub fn sequential(mut self) -> Self {
        if let Some(p) = self.pacer.as_mut() {
            p.slips = true;
        }
        self
    }

    /// The first op is due at `at` (a paced run given `start_at`), or as
    /// soon as the run is ready if that has passed.
    pub fn starting_at(mut self, at: Instant) -> Self {
        self.start_at = Some(at);
        self
    }

    /// How late the first op was against `start_at`, once started.
    pub fn started_late(&self) -> Option<Duration> {
        self.start_at
            .map(|at| self.started.saturating_duration_since(at))
            .filter(|late| !late.is_zero())
    }

    /// Restarts the clocks just before the first op (setup is not measured).
    pub fn start(&mut self) {
        let now = self.start_at.map_or(Instant::now(), |at| at.max(Instant::now()));
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
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.slip_to(Instant::now());
        }
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
    fn a_sequential_client_on_time_keeps_the_schedule_whatever_its_sleeps_overshoot() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut p = Pacer::new(200.0, t0);
        p.slips = true;
        for op in 0..20u32 {
            let due = t0 + us(5_000) * op;
            // Ready 1 ms before the turn; the sleep wakes 300 us past it.
            p.slip_to(due.checked_sub(us(1_000)).unwrap_or(t0));
            p.take_turn(due + us(300));
        }
        assert_eq!(p.next, t0 + us(5_000) * 20, "the overshoots moved the schedule");
        assert_eq!(p.late, 0);
    }

    #[test]
    fn a_start_time_holds_the_first_op_and_the_clocks_until_then() {
        let at = Instant::now() + Duration::from_millis(150);
        let mut r = Recorder::new(Some(1000.0), Duration::from_secs(60), false).starting_at(at);
        r.start();
        assert_eq!(r.started, at, "the measured span starts at the due time");
        r.before_op(&CancelToken::new()).unwrap();
        assert!(Instant::now() >= at);
        assert_eq!(r.started_late(), None);
        // Ready after the due time: starts at once, and says how late.
        let past = Instant::now();
        let mut late = Recorder::new(Some(1000.0), Duration::from_secs(60), false).starting_at(past);
        std::thread::sleep(Duration::from_millis(5));
        late.start();
        assert!(late.started_late().unwrap() >= Duration::from_millis(5));
    }

    #[test]
    fn a_sequential_pace_slips_where_a_steady_one_catches_up() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut steady = Pacer::new(100.0, t0);
        let mut sequential = Pacer::new(100.0, t0);
        sequential.slips = true;
        for p in [&mut steady, &mut sequential] {
            p.take_turn(t0);
            // Ready for the second op 40 ms late (a put stalled behind a
            // commit).
            p.slip_to(t0 + ms(50));
            p.take_turn(t0 + ms(50));
            assert_eq!(p.late, 1);
        }
        // The schedule owes three more ops at once; one client sends the
        // next a full interval after the late one.
        assert_eq!(steady.next, t0 + ms(20));
        assert_eq!(sequential.next, t0 + ms(60));
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
