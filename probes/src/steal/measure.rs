//! Runs the measurement: starts one pinned hiccup worker per CPU, samples
//! /proc/stat, the workers' schedstat and lost time, and the cgroup's
//! throttled time once per interval from this (the calling) thread, and
//! stops the workers on time, on cancel, or on any error.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::CancelToken;
use crate::error::ProbeError;

use super::cgroup::{self, CpuCgroup};
use super::counters::{read_proc_stat, StatSnapshot};
use super::hiccup::{run_worker, Gate, WorkerOutcome, WorkerPlan, WorkerProgress};
use super::schedstat::{read_thread, ThreadSched};
use super::{Plan, NAME};

/// How long workers may take to pin and calibrate before the run is
/// abandoned (calibration itself takes 20 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the sampler looks at the cancel token between samples.
const CANCEL_POLL: Duration = Duration::from_millis(20);
/// Workers stop by themselves this long after the planned end, in case the
/// sampler is starved and never stops them.
const WORKER_GRACE: Duration = Duration::from_secs(5);

/// Everything read at one sampling instant.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub stat: StatSnapshot,
    /// Per worker, in plan CPU order; None when schedstat is unreadable.
    pub threads: Option<Vec<ThreadSched>>,
    /// Per worker cumulative lost time, ns.
    pub lost_ns: Vec<u64>,
    /// Cumulative throttled time of the probe's cgroup and its ancestors.
    pub throttled_ns: Option<u64>,
}

pub struct Measurement {
    /// The first sample is taken when the workers start; one per interval
    /// after it.
    pub samples: Vec<Sample>,
    pub outcomes: Vec<WorkerOutcome>,
    pub cgroup: Option<CpuCgroup>,
}

/// Workers that are always stopped and joined, also on early returns.
struct Workers {
    gate: Arc<Gate>,
    progress: Vec<Arc<WorkerProgress>>,
    handles: Vec<JoinHandle<Result<WorkerOutcome, String>>>,
}

impl Workers {
    fn spawn(plan: &Plan) -> Result<Workers, ProbeError> {
        let mut workers = Workers {
            gate: Arc::new(Gate::default()),
            progress: Vec::new(),
            handles: Vec::new(),
        };
        for &cpu in &plan.cpus {
            let progress = Arc::new(WorkerProgress::default());
            let gate = Arc::clone(&workers.gate);
            let worker_plan = WorkerPlan {
                cpu,
                threshold_ns: plan.threshold_ns,
                max_run: plan.duration + WORKER_GRACE,
            };
            let shared = Arc::clone(&progress);
            let handle = std::thread::Builder::new()
                .name(format!("iq-steal-cpu{cpu}"))
                .spawn(move || run_worker(worker_plan, shared, gate))
                .map_err(|e| failed(format!("cannot start a measuring thread: {e}")))?;
            workers.progress.push(progress);
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    /// Waits until every worker is calibrated; an error names a CPU that
    /// could not be pinned.
    fn wait_ready(&mut self, cancel: &CancelToken) -> Result<(), ProbeError> {
        let begin = Instant::now();
        while self.gate.ready() < self.handles.len() {
            cancel.check(NAME)?;
            if begin.elapsed() > READY_TIMEOUT {
                return Err(failed(format!(
                    "measuring threads did not start within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if self
            .progress
            .iter()
            .any(|p| p.failed.load(Ordering::Relaxed))
        {
            // The failed worker's own message names the CPU and the errno.
            let message = self
                .stop_and_join()
                .into_iter()
                .find_map(Result::err)
                .unwrap_or_else(|| "a measuring thread could not be pinned".into());
            return Err(failed(message));
        }
        Ok(())
    }

    fn tids(&self) -> Vec<libc::pid_t> {
        self.progress
            .iter()
            .map(|p| p.tid.load(Ordering::Relaxed))
            .collect()
    }

    fn lost_ns(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.lost_ns.load(Ordering::Relaxed))
            .collect()
    }

    fn stop_and_join(&mut self) -> Vec<Result<WorkerOutcome, String>> {
        self.gate.stop();
        self.handles
            .drain(..)
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a measuring thread panicked".to_string()))
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

struct Sampler {
    buffer: String,
    tids: Vec<libc::pid_t>,
    cgroup: Option<CpuCgroup>,
    /// Cleared at the first unreadable schedstat: attribution is then off
    /// for the whole run rather than for some intervals.
    sched_readable: bool,
}

impl Sampler {
    fn take(&mut self, workers: &Workers) -> Result<Sample, ProbeError> {
        let at = Instant::now();
        let lost_ns = workers.lost_ns();
        let stat = read_proc_stat(&mut self.buffer).map_err(|e| ProbeError::io("/proc/stat", e))?;
        let threads = if self.sched_readable {
            let read: Result<Vec<ThreadSched>, _> =
                self.tids.iter().map(|&tid| read_thread(tid)).collect();
            self.sched_readable = read.is_ok();
            read.ok()
        } else {
            None
        };
        let throttled_ns = self.cgroup.as_ref().map(CpuCgroup::throttled_ns);
        Ok(Sample {
            at,
            stat,
            threads,
            lost_ns,
            throttled_ns,
        })
    }
}

/// Runs the whole measurement for `plan`, polling `cancel`.
pub fn measure(plan: &Plan, cancel: &CancelToken) -> Result<Measurement, ProbeError> {
    let mut workers = Workers::spawn(plan)?;
    workers.wait_ready(cancel)?;
    let mut sampler = Sampler {
        buffer: String::with_capacity(8192),
        tids: workers.tids(),
        cgroup: cgroup::own(),
        sched_readable: true,
    };
    let intervals = plan
        .duration
        .as_nanos()
        .div_ceil(plan.interval.as_nanos().max(1));
    let mut samples = Vec::with_capacity(usize::try_from(intervals).unwrap_or(0) + 1);

    workers.gate.open();
    let start = sampler.take(&workers)?;
    let begin = start.at;
    let end = begin + plan.duration;
    samples.push(start);
    let mut next = begin + plan.interval;
    loop {
        let due = next.min(end);
        while Instant::now() < due {
            cancel.check(NAME)?;
            std::thread::sleep(CANCEL_POLL.min(due.saturating_duration_since(Instant::now())));
        }
        samples.push(sampler.take(&workers)?);
        if due >= end {
            break;
        }
        next += plan.interval;
    }

    discard_empty_schedstat(&mut samples);
    let mut outcomes = Vec::with_capacity(plan.cpus.len());
    for result in workers.stop_and_join() {
        outcomes.push(result.map_err(failed)?);
    }
    Ok(Measurement {
        samples,
        outcomes,
        cgroup: sampler.cgroup,
    })
}

/// Without CONFIG_SCHED_INFO the kernel prints "0 0 0" for every thread:
/// busy threads that show no run time at all mean there is no data.
fn discard_empty_schedstat(samples: &mut [Sample]) {
    let exec =
        |s: &Sample| -> Option<u64> { Some(s.threads.as_ref()?.iter().map(|t| t.exec_ns).sum()) };
    let ran = match (
        samples.first().and_then(exec),
        samples.last().and_then(exec),
    ) {
        (Some(a), Some(b)) => b > a,
        _ => false,
    };
    if !ran {
        for sample in samples {
            sample.threads = None;
        }
    }
}

fn failed(message: String) -> ProbeError {
    ProbeError::Failed {
        probe: NAME.to_string(),
        message,
    }
}
