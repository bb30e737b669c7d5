//! The hiccup detector: one thread per measured CPU, pinned, spinning on the
//! monotonic clock. Any gap between two consecutive reads larger than the
//! threshold is time the thread did not run: it is recorded and summed.
//!
//! The hot loop does nothing but read the clock, compare, and (rarely, on a
//! gap) record into a histogram allocated beforehand and publish a running
//! total through relaxed atomics: no allocation, I/O or locks.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::histogram::LatencyHistogram;

use super::affinity;

/// The floor of the gap threshold: below it, cache misses and TLB refills
/// of the loop itself would count as interruptions.
pub const MIN_THRESHOLD_NS: u64 = 10_000;
/// rigtorp/hiccups' rule: a gap is an interruption when it exceeds eight
/// times the smallest observed step of the loop.
pub const STEP_MULTIPLE: u64 = 8;
/// How long each thread measures its own loop before the run starts.
const CALIBRATION: Duration = Duration::from_millis(20);
/// How often a calibrated worker looks whether the run has started.
const GATE_POLL: Duration = Duration::from_micros(200);

const WAITING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// Starts all workers together and stops them. Unlike a barrier it cannot
/// deadlock when a worker fails to start: the sampler counts `ready`
/// workers with a timeout and may stop them instead of opening.
#[derive(Debug, Default)]
pub struct Gate {
    ready: AtomicUsize,
    state: AtomicU8,
}

impl Gate {
    /// Workers that finished calibrating (or failed to pin).
    pub fn ready(&self) -> usize {
        self.ready.load(Ordering::Acquire)
    }

    pub fn open(&self) {
        let _ = self
            .state
            .compare_exchange(WAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn stop(&self) {
        self.state.store(STOPPED, Ordering::Release);
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }
}

/// What a worker publishes while it runs, read by the sampler each interval.
#[derive(Debug, Default)]
pub struct WorkerProgress {
    /// Kernel thread id, set before the worker reports ready.
    pub tid: AtomicI32,
    /// Set when the worker could not pin itself; it then exits.
    pub failed: AtomicBool,
    /// Running sum of recorded gaps, in ns.
    pub lost_ns: AtomicU64,
    /// Number of recorded gaps.
    pub gaps: AtomicU64,
}

/// What one worker measured, returned when it stops.
#[derive(Clone, Debug)]
pub struct WorkerOutcome {
    pub cpu: usize,
    pub hiccups: LatencyHistogram,
    pub min_step_ns: u64,
    pub threshold_ns: u64,
    pub iterations: u64,
}

pub struct WorkerPlan {
    pub cpu: usize,
    /// Fixed threshold; None calibrates it.
    pub threshold_ns: Option<u64>,
    /// A hard stop even if the sampler never stops the gate (it always
    /// should; this bounds the loop if the sampler thread is starved).
    pub max_run: Duration,
}

/// Pins, calibrates, reports ready, waits for the gate to open, then spins
/// until it is stopped.
pub fn run_worker(
    plan: WorkerPlan,
    progress: Arc<WorkerProgress>,
    gate: Arc<Gate>,
) -> Result<WorkerOutcome, String> {
    progress
        .tid
        .store(affinity::current_tid(), Ordering::Relaxed);
    if let Err(e) = affinity::pin_to_cpu(0, plan.cpu) {
        progress.failed.store(true, Ordering::Relaxed);
        gate.ready.fetch_add(1, Ordering::AcqRel);
        return Err(format!("cannot pin a thread to CPU {}: {e}", plan.cpu));
    }
    let min_step_ns = smallest_step(CALIBRATION);
    let threshold_ns = plan
        .threshold_ns
        .unwrap_or_else(|| default_threshold(min_step_ns));
    let mut hiccups = LatencyHistogram::new();
    gate.ready.fetch_add(1, Ordering::AcqRel);
    let give_up = Instant::now() + plan.max_run;
    while gate.state() == WAITING && Instant::now() < give_up {
        std::thread::sleep(GATE_POLL);
    }

    let hard_stop = Instant::now() + plan.max_run;
    let iterations = if gate.state() == RUNNING {
        spin(&mut hiccups, &progress, &gate, threshold_ns, hard_stop)
    } else {
        0
    };
    Ok(WorkerOutcome {
        cpu: plan.cpu,
        hiccups,
        min_step_ns,
        threshold_ns,
        iterations,
    })
}

pub fn default_threshold(min_step_ns: u64) -> u64 {
    MIN_THRESHOLD_NS.max(STEP_MULTIPLE.saturating_mul(min_step_ns))
}

/// The hot loop. Returns how many times it read the clock.
fn spin(
    hiccups: &mut LatencyHistogram,
    progress: &WorkerProgress,
    gate: &Gate,
    threshold_ns: u64,
    hard_stop: Instant,
) -> u64 {
    let mut previous = Instant::now();
    let mut lost_ns = 0u64;
    let mut gaps = 0u64;
    let mut iterations = 0u64;
    loop {
        let now = Instant::now();
        let gap = duration_ns(now.duration_since(previous));
        previous = now;
        iterations += 1;
        if gap > threshold_ns {
            hiccups.record(gap);
            lost_ns += gap;
            gaps += 1;
            progress.lost_ns.store(lost_ns, Ordering::Relaxed);
            progress.gaps.store(gaps, Ordering::Relaxed);
        }
        // A relaxed load of a line nobody writes until the end stays in
        // this core's cache: cheap enough to test on every step.
        if gate.state() != RUNNING || now >= hard_stop {
            return iterations;
        }
    }
}

/// The smallest non-zero step between two clock reads over `window`: the
/// loop's own resolution on this machine.
fn smallest_step(window: Duration) -> u64 {
    let begin = Instant::now();
    let mut previous = begin;
    let mut smallest = u64::MAX;
    loop {
        let now = Instant::now();
        let step = duration_ns(now.duration_since(previous));
        if step > 0 && step < smallest {
            smallest = step;
        }
        previous = now;
        if now.duration_since(begin) >= window {
            break;
        }
    }
    if smallest == u64::MAX {
        0
    } else {
        smallest
    }
}

pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_the_larger_of_the_floor_and_eight_steps() {
        assert_eq!(default_threshold(0), MIN_THRESHOLD_NS);
        assert_eq!(default_threshold(20), MIN_THRESHOLD_NS);
        assert_eq!(default_threshold(5_000), 40_000);
    }

    #[test]
    fn calibration_finds_a_small_positive_step() {
        let step = smallest_step(Duration::from_millis(5));
        assert!(step > 0 && step < 1_000_000, "step {step} ns");
    }

    #[test]
    fn worker_starts_at_the_gate_stops_promptly_and_publishes_what_it_recorded() {
        let cpu = *affinity::allowed_cpus().unwrap().first().unwrap();
        let progress = Arc::new(WorkerProgress::default());
        let gate = Arc::new(Gate::default());
        let worker = {
            let (progress, gate) = (progress.clone(), gate.clone());
            std::thread::spawn(move || {
                let plan = WorkerPlan {
                    cpu,
                    threshold_ns: None,
                    max_run: Duration::from_secs(10),
                };
                run_worker(plan, progress, gate)
            })
        };
        let waited = Instant::now();
        while gate.ready() < 1 && waited.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(gate.ready(), 1);
        gate.open();
        std::thread::sleep(Duration::from_millis(300));
        let stopping = Instant::now();
        gate.stop();
        let outcome = worker.join().unwrap().unwrap();
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "stops promptly"
        );
        assert!(outcome.iterations > 1000, "{outcome:?}");
        // Lost time is the sum of the recorded gaps (to histogram precision).
        let lost = progress.lost_ns.load(Ordering::Relaxed) as f64;
        let summed = outcome.hiccups.mean() * outcome.hiccups.len() as f64;
        assert!(
            (lost - summed).abs() <= lost * 0.002 + 1.0,
            "{lost} vs {summed}"
        );
        assert!(outcome.threshold_ns >= MIN_THRESHOLD_NS);
        assert_eq!(outcome.hiccups.len(), progress.gaps.load(Ordering::Relaxed));
        // 3 significant digits: a recorded gap reads back within 0.1 %.
        let floor = outcome.threshold_ns - outcome.threshold_ns / 500;
        assert!(outcome.hiccups.is_empty() || outcome.hiccups.min() >= floor);
        assert!(progress.tid.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_stopped_gate_releases_a_waiting_worker_without_measuring() {
        let gate = Arc::new(Gate::default());
        gate.stop();
        let plan = WorkerPlan {
            cpu: *affinity::allowed_cpus().unwrap().first().unwrap(),
            threshold_ns: Some(50_000),
            max_run: Duration::from_secs(10),
        };
        let outcome = run_worker(plan, Arc::default(), gate).unwrap();
        assert_eq!((outcome.iterations, outcome.threshold_ns), (0, 50_000));
    }

    #[test]
    fn pinning_to_a_missing_cpu_fails_and_still_counts_as_ready() {
        let progress = Arc::new(WorkerProgress::default());
        let gate = Arc::new(Gate::default());
        let plan = WorkerPlan {
            cpu: 1023,
            threshold_ns: None,
            max_run: Duration::from_secs(1),
        };
        let e = run_worker(plan, progress.clone(), gate.clone()).unwrap_err();
        assert!(e.contains("CPU 1023"), "{e}");
        assert_eq!(gate.ready(), 1);
        assert!(progress.failed.load(Ordering::Relaxed));
    }
}
