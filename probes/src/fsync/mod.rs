//! The fsync probe: can this disk carry etcd's WAL? Sequential appends with
//! an fdatasync per write (fio's etcd recipe) or per batch (etcd's own WAL),
//! every write and sync timed, judged against etcd's 10 ms p99 bound, on a
//! device the result names.

mod backend;
mod device;
mod etcd_wal;
mod fio_etcd;
mod guard;
pub mod leftovers;
mod params;
mod recorder;
pub mod reference;
mod rounds;
mod segment;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{
    deadline_for_duration, Better, ContextMetric, JudgedFact, Probe, ProbeName, QualifyOptions, DEADLINE_UNKNOWN,
};
use crate::profile::Profile;
use crate::result::ProbeResult;
use crate::system::dirfd::DirHandle;
use crate::units::{ByteSize, HumanDuration};

pub use device::{locate, volatile_reason, Storage};
pub use guard::WORK_PREFIX;
pub use params::{
    Mode, Params, DEFAULT_BLOCK_SIZE, DEFAULT_ENTRIES_PER_SYNC, DEFAULT_SIZE, ETCD_SEGMENT_BYTES,
};
use recorder::{Outcome, Recorder};

pub const NAME: ProbeName = ProbeName::declare("fsync");

/// The fsync probe's declaration.
pub struct Fsync;

impl Probe for Fsync {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str = "Can this disk carry etcd's WAL? Sequential writes + fdatasync, judged against etcd's 10 ms p99.";
    const HEAVY: bool = true;
    const JUDGED_FACTS: &'static [JudgedFact] = &[JudgedFact {
        fact: "syncs_per_sec",
        unit: "syncs/s",
        better: Better::Higher,
        keyed: false,
    }];
    // Measured: on one directory, two runs a minute apart under changing
    // load moved `write` by tens of percent while the disk stayed the same.
    const CONTEXT_METRICS: &'static [ContextMetric] = &[
        ContextMetric {
            metric: "write",
            why: "a copy into the page cache: CPU-bound, it follows the machine's load, not the disk",
        },
        ContextMetric {
            metric: BACKEND_APPLY_WAIT_METRIC,
            why: "mostly a hand-off between threads (its median is a wake-up, CPU-bound); \
                  the disk's part of it is in backend_commit",
        },
    ];
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.validate()
    }

    fn writes_to(params: &Params) -> Vec<PathBuf> {
        vec![params.dir.clone()]
    }

    fn deadline(params: &Params) -> Duration {
        let recipe = if params.fio_reference {
            deadline_for_duration(params::DEFAULT_TIME_LIMIT)
        } else {
            Duration::ZERO
        };
        let own = match (params.duration, params.rate) {
            (Some(d), _) => deadline_for_duration(d.0),
            (None, Some(rate)) => {
                let syncs = params.size.0 as f64 / params.block_size.0.max(1) as f64;
                deadline_for_duration(Duration::from_secs_f64(syncs / rate)).max(DEADLINE_UNKNOWN)
            }
            (None, None) => DEADLINE_UNKNOWN,
        };
        own.saturating_add(recipe)
    }

    /// etcd's WAL at etcd's sync rate, its backend beside it, and fio's
    /// recipe afterwards as the community reference: against a real etcd's
    /// own WAL fsync (scripts/bench-fsync-vs-etcd, the README's "Does the
    /// fsync check predict etcd?") the paced etcd-wal mode predicted its
    /// mean and p99 where the recipe, syncing back to back, read a third to
    /// a half of etcd's mean. `qualify --fsync-mode fio-etcd` runs the
    /// recipe alone, as judged before.
    fn qualify_params(opts: &QualifyOptions<'_>) -> Params {
        let mut params = Params::for_dir(opts.dir);
        if opts.quick {
            params.size = QUICK_SIZE;
        }
        if opts.fsync_mode == Mode::EtcdWal {
            params.mode = Mode::EtcdWal;
            params.rate = Some(QUALIFY_RATE_PER_SEC);
            params.duration = Some(HumanDuration(if opts.quick {
                QUICK_DURATION
            } else {
                QUALIFY_DURATION
            }));
            params.fio_reference = true;
        }
        params
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }

    fn merge_rounds(rounds: Vec<ProbeResult>, profile: &Profile) -> Result<ProbeResult, ProbeError> {
        rounds::merge(rounds, profile)
    }
}

/// `qualify --quick`: about 1,800 syncs of the recipe, enough for a p99.
const QUICK_SIZE: ByteSize = ByteSize(4 << 20);
/// The mode `qualify` judges unless told otherwise.
pub const QUALIFY_MODE: Mode = Mode::EtcdWal;
/// `qualify`'s sync rate in mode etcd-wal: `etcdctl check perf`'s small
/// load (150 puts/s), which a single etcd member turns into 149 WAL syncs a
/// second, one entry each (measured by scripts/bench-fsync-vs-etcd).
pub const QUALIFY_RATE_PER_SEC: f64 = 150.0;
/// As long as `etcdctl check perf` loads etcd: 9,000 syncs at the rate.
const QUALIFY_DURATION: Duration = Duration::from_secs(60);
/// `qualify --quick` in mode etcd-wal: 450 syncs, a smoke test.
const QUICK_DURATION: Duration = Duration::from_secs(3);
pub const CHECK: &str = "fsync.fdatasync.p99";
/// Each synced batch's wait to be applied while a backend commit held the
/// batch (etcd-wal with the backend on): the stall a put's apply sees.
pub const BACKEND_APPLY_WAIT_METRIC: &str = "backend_apply_wait";
/// What [`CHECK`] judges in a paced run: every sync as it took, without the
/// samples coordinated-omission correction back-fills into `fdatasync` for a
/// sender that kept its schedule. etcd's WAL fsync histogram, which the
/// check's 10 ms bound is about, has no back-fill: against a real etcd under
/// load the back-filled p99 read 3.8x etcd's, this one 1.2x
/// (scripts/bench-fsync-vs-etcd).
pub const JUDGED_PACED_METRIC: &str = "fdatasync_each";

/// etcd's hardware guide: sequential IOPS for a minimal and for a heavily
/// loaded cluster.
pub const ETCD_MIN_IOPS: f64 = 50.0;
pub const ETCD_LOADED_IOPS: f64 = 500.0;

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    let started = Instant::now();
    params.validate()?;
    // Resolved once: every later step works from this handle, so a symlink
    // swapped in meanwhile cannot redirect a write.
    let opened;
    let handle: &DirHandle = match &ctx.write_dir {
        Some(h) => h,
        None => {
            opened = existing_dir(&params.dir)?;
            &opened
        }
    };
    let dir = handle.path().to_path_buf();
    let swept = leftovers::sweep(handle);
    let storage = device::locate(&handle.proc_path())?;
    if let Some(reason) = &storage.volatile {
        if !params.allow_volatile {
            return Err(ProbeError::invalid(
                "dir",
                format!(
                    "{} is refused: {reason}, so its fdatasync proves nothing about a disk \
                     (pass allow_volatile / --allow-volatile to measure it anyway)",
                    dir.display()
                ),
            ));
        }
    }
    let free = guard::check_free_space(handle, params.bytes_needed())?;
    ctx.cancel.check(NAME)?;

    let mut result = ProbeResult::new(NAME, &ctx.node);
    if let Value::Object(map) = serde_json::to_value(params).unwrap_or(Value::Null) {
        result.params = map;
    }
    result.param("dir", dir.display().to_string());
    device::add_facts(&mut result, &storage);
    result.fact("free_bytes_before", free);
    for removed in &swept {
        result.warn(format!(
            "removed {removed}, left by an earlier fsync run that crashed"
        ));
    }
    if let Some(reason) = &storage.volatile {
        result.fact("volatile", true);
        result.warn(format!(
            "measured on volatile storage ({reason}): the numbers say nothing about a disk"
        ));
    }

    let work = guard::WorkDir::create(handle)?;
    let measured = measure(params, work.dir(), ctx);
    // Remove the files before looking at the outcome: every exit path cleans.
    let removal = work.remove();
    let (rec, outcome) = measured?;
    if let Err(e) = removal {
        result.warn(format!("could not remove the probe's files: {e}"));
    }

    add_measurements(&mut result, params, &storage, &rec, &outcome)?;
    if params.fio_reference {
        reference::measure_and_add(params, handle, ctx, &mut result)?;
    }
    let judged = rec.fdatasync_each.as_ref().unwrap_or(&rec.fdatasync);
    judge(
        &mut result,
        &ctx.profile,
        judged.value_at_quantile(0.99),
        rec.syncs_per_sec(),
        params.rate.is_some(),
    );
    result.finish(started);
    Ok(result)
}

/// The `fsync.fdatasync.p99` verdict and the IOPS guidance beside it.
fn judge(result: &mut ProbeResult, profile: &Profile, p99: u64, syncs_per_sec: f64, paced: bool) {
    let mut verdict = profile.judge(CHECK, p99 as f64);
    let guidance = iops_guidance(syncs_per_sec, paced);
    verdict.note = if verdict.note.is_empty() {
        guidance.clone()
    } else {
        format!("{}; {guidance}", verdict.note)
    };
    result.fact("etcd_iops_guidance", guidance);
    result.verdicts.push(verdict);
}

/// The directory, opened; it must exist (the probe creates only its own
/// subdirectory inside it).
fn existing_dir(dir: &Path) -> Result<DirHandle, ProbeError> {
    DirHandle::open(dir).map_err(|e| match e {
        ProbeError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOTDIR) => {
            ProbeError::invalid("dir", format!("{} is not a directory", dir.display()))
        }
        ProbeError::Io { source, .. } => {
            ProbeError::invalid("dir", format!("{}: {source}", dir.display()))
        }
        other => other,
    })
}

/// How late past `start_at` the first sync may go out before the result
/// warns that it is out of phase.
const START_AT_TOLERANCE: std::time::Duration = std::time::Duration::from_millis(1);

/// Runs the mode's writer loop on its own OS thread.
fn measure(
    params: &Params,
    work: &DirHandle,
    ctx: &ProbeContext,
) -> Result<(Recorder, Outcome), ProbeError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("iq-fsync-writer".into())
            .spawn_scoped(scope, || {
                let mut rec =
                    Recorder::new(params.rate, params.time_limit(), params.duration.is_some());
                if params.sequential {
                    rec = rec.sequential();
                }
                if let Some(at) = params.start_at {
                    rec = rec.starting_at(at.instant());
                }
                let outcome = match params.mode {
                    Mode::FioEtcd => fio_etcd::run(params, work, &ctx.cancel, &mut rec),
                    Mode::EtcdWal => etcd_wal::run(params, work, &ctx.cancel, &mut rec),
                }?;
                Ok((rec, outcome))
            })
            .map_err(|e| ProbeError::Failed {
                probe: NAME.into(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        handle.join().map_err(|_| ProbeError::Failed {
            probe: NAME.into(),
            message: "the writer thread panicked".into(),
        })?
    })
}

fn add_measurements(
    result: &mut ProbeResult,
    params: &Params,
    storage: &Storage,
    rec: &Recorder,
    outcome: &Outcome,
) -> Result<(), ProbeError> {
    result.metric("fdatasync", &rec.fdatasync, "ns")?;
    if let Some(each) = &rec.fdatasync_each {
        result.metric(JUDGED_PACED_METRIC, each, "ns")?;
    }
    result.metric("write", &rec.write, "ns")?;
    if let Some(rollover) = &outcome.rollover {
        result.metric("rollover", rollover, "ns")?;
    }
    if let Some(backend) = &outcome.backend {
        result.metric("backend_commit", &backend.commits, "ns")?;
        result.metric(BACKEND_APPLY_WAIT_METRIC, &backend.apply_waits, "ns")?;
    }
    result
        .series
        .insert("per_second_p99_ns".into(), rec.per_second_p99.clone());
    result
        .series
        .insert("per_second_syncs".into(), rec.per_second_syncs.clone());

    result.fact("mode", params.mode.as_str());
    let pattern = match params.rate {
        Some(rate) => {
            result.fact("rate_per_sec", rate);
            if let Some(p) = &rec.pacer {
                result.fact("paced_late_ops", p.late);
            }
            "paced"
        }
        None => "back-to-back",
    };
    result.fact("pattern", pattern);
    result.fact("syncs", rec.syncs);
    result.fact("writes", rec.writes);
    result.fact("bytes_written", rec.bytes);
    result.fact("syncs_per_sec", round2(rec.syncs_per_sec()));
    result.fact("measured_ms", rec.elapsed().as_millis() as u64);
    result.fact("stopped_by", outcome.stopped_by.as_str());
    result.fact("preallocation", outcome.prealloc.as_str());
    if params.mode == Mode::EtcdWal {
        result.fact("segments", outcome.segments);
        result.fact("entries_per_sync", params.entries_per_sync);
        // 0 when the backend was off.
        let interval = params.backend().map_or(0, |d| d.as_millis() as u64);
        result.fact("backend_interval_ms", interval);
        if let Some(backend) = &outcome.backend {
            result.fact("backend_commits", backend.commits.len());
            result.fact("backend_pages_written", backend.pages);
        }
    }
    if outcome.stopped_by == recorder::StopReason::TimeLimit {
        result.warn(format!(
            "stopped after the default time limit of {} s before writing all of size {}",
            params.time_limit().as_secs(),
            params.size
        ));
    }
    // A start a fraction of a sync late is in phase for all a disk can tell.
    let late = rec.started_late().filter(|l| *l >= START_AT_TOLERANCE);
    if let (Some(at), Some(late)) = (params.start_at, late) {
        result.warn(format!(
            "the first sync was due at start_at {at} and went out {:.1} ms late (the probe \
             was not ready): it is out of phase with probes given the same time by that much",
            late.as_secs_f64() * 1e3
        ));
    }
    if rec.syncs < 100 {
        result.warn(format!(
            "only {} fdatasync calls were measured: p99 rests on very few samples",
            rec.syncs
        ));
    }
    if storage.volatile.is_none() {
        let p50 = rec.fdatasync.value_at_quantile(0.50);
        if let Some(w) = device::implausible_flush_warning(&storage.disks, p50) {
            result.warn(w);
        }
    }
    Ok(())
}

/// Where the measured syncs per second stand against etcd's sequential IOPS
/// guidance (a paced run measures the rate asked for, not the capacity).
fn iops_guidance(syncs_per_sec: f64, paced: bool) -> String {
    if paced {
        return format!(
            "each sync as it took ({JUDGED_PACED_METRIC}, as etcd's own histogram counts); \
             {syncs_per_sec:.0} syncs/s at the paced rate (not a capacity figure; etcd's guide \
             asks for {ETCD_MIN_IOPS:.0} sequential IOPS minimum, {ETCD_LOADED_IOPS:.0} for a \
             heavily loaded cluster)"
        );
    }
    let standing = if syncs_per_sec >= ETCD_LOADED_IOPS {
        "meets etcd's 500 sequential IOPS for a heavily loaded cluster"
    } else if syncs_per_sec >= ETCD_MIN_IOPS {
        "meets etcd's 50 sequential IOPS minimum, below the 500 for a heavily loaded cluster"
    } else {
        "below etcd's 50 sequential IOPS minimum"
    };
    format!("{syncs_per_sec:.0} syncs/s back to back: {standing}")
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
