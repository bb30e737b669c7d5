//! `infraqual soak`: light, paced probes on a schedule for hours. Each
//! interval runs a short steal slice and, with `--dir`, an fsync slice in
//! etcd's WAL pattern at a steady rate, then waits for the interval's end;
//! its histograms and facts are appended to an HdrHistogram interval log
//! (hlog.rs) as it ends. Interval lengths come from the monotonic clock; the
//! log's stamps are wall-clock seconds for readers. Started again with the
//! same `--log`, a soak appends and only measures what it still owes. At the
//! end the log becomes a run bundle (windows.rs): overall and per-window
//! verdicts and the per-interval timelines.

pub mod gaps;
pub mod hlog;
pub mod rounds;
pub mod windows;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use infraqual_probes::units::HumanDuration;
use infraqual_probes::{registry, ProbeContext, ProbeName, ProbeResult};
use infraqual_reports::bundle::BundleWriter;
use infraqual_reports::render;
use serde_json::{json, Value};

use crate::commands::local_run::LocalRunArgs;
use crate::exit::Outcome;
use crate::probe_args::load_profile;
use crate::signals;
use hlog::{HlogWriter, IntervalFacts};

const MIN_EVERY: Duration = Duration::from_secs(4);
const MAX_EVERY: Duration = Duration::from_secs(3600);
const MAX_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Bounds the log (about 8 KB per interval with steal and fsync, so at most
/// some 160 MB): a day at 5 s intervals fits, a week needs 31 s or more.
const MAX_INTERVALS: u64 = 20_000;
/// A slice of each interval per probe: a quarter, at most 30 s, so that the
/// soak stays light and the probes never overlap.
const MAX_SLICE: Duration = Duration::from_secs(30);
/// etcd's minimal sequential IOPS (its hardware guide): a realistic,
/// steady WAL load rather than a saturation test.
pub const FSYNC_RATE_PER_SEC: f64 = 50.0;

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long to measure in total, e.g. 24h (8s ..= 7d).
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: HumanDuration,
    /// Interval length: one hlog line per series per interval (4s ..= 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub every: HumanDuration,
    /// Directory on the disk under test for the fsync slices (no fsync without it).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// A peer's echo responder (`infraqual agent --echo-port`) to measure
    /// rtt to, as NODE=ADDR:PORT; repeatable.
    #[arg(long = "peer", value_name = "NODE=ADDR:PORT", value_parser = parse_peer)]
    pub peers: Vec<Peer>,
    /// The interval log; an existing one is continued, not overwritten.
    #[arg(long, value_name = "FILE", default_value = "soak.hlog")]
    pub log: PathBuf,
    #[command(flatten)]
    pub run: LocalRunArgs,
}

#[derive(Clone, Debug)]
pub struct Peer {
    pub node: String,
    pub addr: std::net::SocketAddr,
}

fn parse_peer(text: &str) -> Result<Peer, String> {
    let (node, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NODE=ADDR:PORT"))?;
    if node.is_empty() || node.contains(['/', ' ', ',']) {
        return Err(format!("`{node}`: a node name without '/', ',' or spaces"));
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("`{addr}`: {e} (expected ADDR:PORT)"))?;
    Ok(Peer {
        node: node.to_string(),
        addr,
    })
}

/// rtt exchanges per second per peer and kind: a steady trickle.
pub const RTT_RATE_PER_SEC: u32 = 20;

/// The schedule, checked: exit 2 with one line when it makes no sense.
pub struct Schedule {
    pub total: Duration,
    pub every: Duration,
    pub slice: Duration,
}

impl Schedule {
    pub fn new(total: Duration, every: Duration) -> Result<Self> {
        check_every(every)?;
        if total > MAX_FOR || total < 2 * MIN_EVERY {
            bail!(
                "--for {}: outside {} ..= {}",
                HumanDuration(total),
                HumanDuration(2 * MIN_EVERY),
                HumanDuration(MAX_FOR)
            );
        }
        if every > total {
            bail!(
                "--every {} is longer than --for {}",
                HumanDuration(every),
                HumanDuration(total)
            );
        }
        let intervals = total.as_secs() / every.as_secs().max(1);
        if intervals > MAX_INTERVALS {
            bail!(
                "--every {}: --for {} would log {intervals} intervals, at most {MAX_INTERVALS} \
                 (about 8 KB each); use a longer --every",
                HumanDuration(every),
                HumanDuration(total)
            );
        }
        Ok(Self::sliced(total, every))
    }

    /// The rest of a soak a restarted coordinator continues: whole
    /// intervals, as few as one (the soak's own length was checked when it
    /// began).
    pub fn continuing(total: Duration, every: Duration) -> Result<Self> {
        check_every(every)?;
        if total < every || total > MAX_FOR {
            bail!(
                "a continued soak's --for {}: outside one interval ({}) ..= {}",
                HumanDuration(total),
                HumanDuration(every),
                HumanDuration(MAX_FOR)
            );
        }
        Ok(Self::sliced(total, every))
    }

    fn sliced(total: Duration, every: Duration) -> Self {
        let slice = (every / 4).min(MAX_SLICE);
        // Whole seconds: the steal probe samples once a second.
        let slice = Duration::from_secs(slice.as_secs().max(1));
        Schedule {
            total,
            every,
            slice,
        }
    }
}

fn check_every(every: Duration) -> Result<()> {
    if !(MIN_EVERY..=MAX_EVERY).contains(&every) {
        bail!(
            "--every {}: outside {} ..= {}",
            HumanDuration(every),
            HumanDuration(MIN_EVERY),
            HumanDuration(MAX_EVERY)
        );
    }
    Ok(())
}

/// What a soak of `total` that began `elapsed` ago still owes, in whole
/// intervals (rounded to the nearest, as the soak's own loop measures an
/// interval when at least half of it is owed); None when nothing is. The
/// time since the start counts whether measured or not, so a restart
/// cannot stretch a soak past its `for`.
pub fn still_owed(total: Duration, every: Duration, elapsed: Duration) -> Option<Duration> {
    let left = total.checked_sub(elapsed)?;
    let every_s = every.as_secs_f64().max(1.0);
    let intervals = (left.as_secs_f64() / every_s).round() as u32;
    (intervals > 0).then(|| every * intervals)
}

pub fn run(args: &SoakArgs) -> Result<Outcome> {
    let schedule = Schedule::new(args.for_.0, args.every.0)?;
    if let Some(dir) = &args.dir {
        if !dir.is_dir() {
            bail!("--dir {}: not an existing directory", dir.display());
        }
    }
    if let Some(dir) = &args.dir {
        sweep_dead_fsync_dirs(dir);
    }
    let profile = load_profile(&args.run.profile)?;
    let steps = paced_steps(&schedule, args.dir.as_deref(), &args.peers);
    let (mut log, before) = HlogWriter::open(&args.log, SystemTime::now())?;
    let mut ctx = ProbeContext::new(&args.run.node, profile.clone());
    ctx.cancel = signals::cancel_on_signals();

    let owed = schedule
        .total
        .saturating_sub(Duration::from_secs_f64(before.measured_seconds()));
    if !before.intervals.is_empty() {
        eprintln!(
            "soak: continuing {} after {} intervals ({} left)",
            args.log.display(),
            before.intervals.len(),
            HumanDuration(Duration::from_secs(owed.as_secs()))
        );
    }
    let anchor_log = resume_stamp(epoch_seconds(SystemTime::now()), &before);
    let anchor = Instant::now();
    let mut measured = Duration::ZERO;
    while measured + schedule.every / 2 <= owed && !ctx.cancel.is_cancelled() {
        let started = Instant::now();
        let mut facts = IntervalFacts {
            start: round3(anchor_log + started.duration_since(anchor).as_secs_f64()),
            ..Default::default()
        };
        let mut series = Vec::new();
        for (probe, params) in &steps {
            match registry::run(*probe, params, &ctx) {
                Ok(result) => collect(&result, &mut facts, &mut series),
                Err(e) if ctx.cancel.is_cancelled() => {
                    tracing::debug!("{probe} cancelled: {e}");
                }
                Err(e) => eprintln!("soak: {probe}: {e}"),
            }
        }
        let end = started + schedule.every;
        while Instant::now() < end && !ctx.cancel.is_cancelled() {
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(200)));
        }
        if ctx.cancel.is_cancelled() {
            break;
        }
        facts.length = round3(started.elapsed().as_secs_f64());
        log.write_interval(&facts, &series)?;
        measured += started.elapsed();
    }
    if ctx.cancel.is_cancelled() {
        eprintln!(
            "soak: stopped; run the same command again to continue {}",
            args.log.display()
        );
        return Ok(Outcome::Incomplete);
    }

    let contents = hlog::read(&args.log)?;
    let plan = json!({
        "name": format!("soak-{}", args.run.node),
        "profile": profile.name,
        "soak": {
            "for": args.for_.to_string(),
            "every": args.every.to_string(),
            "log": args.log.display().to_string(),
        },
        "probes": steps.iter().map(|(p, v)| (p.to_string(), v.clone())).collect::<serde_json::Map<_, _>>(),
    });
    let plan_toml = toml::to_string_pretty(&plan).context("writing the plan as TOML")?;
    let mut bundle = BundleWriter::create(&args.run.out, &plan_toml, plan, profile.clone())
        .with_context(|| format!("--out {}", args.run.out.display()))?;
    bundle.add_node(&args.run.node, Default::default());
    for result in windows::results(&contents, &args.run.node, &profile, schedule.every)? {
        bundle.add_result(&args.run.node, result)?;
    }
    let record = bundle.finish()?;
    let dir = bundle.dir().to_path_buf();
    render::render_bundle(&dir, &record).with_context(|| format!("rendering {}", dir.display()))?;
    crate::commands::qualify::print_summary(&record);
    println!("log: {}", args.log.display());
    println!("report: {}", dir.join("report.html").display());
    Ok(Outcome::from_verdict(record.verdict))
}

/// A soak killed with -9 leaves its fsync slice's work directory behind;
/// the next soak on the same disk removes those whose process is gone.
fn sweep_dead_fsync_dirs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(infraqual_probes::fsync::WORK_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => eprintln!(
                    "soak: removed {} (left by a dead run)",
                    entry.path().display()
                ),
                Err(e) => eprintln!("soak: cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Where this process starts on the log's time axis: wall-clock seconds
/// since the log's StartTime, but never before the log's end, so a clock set
/// back between two runs cannot make intervals overlap. Later stamps add
/// monotonic time to it, so a clock step during a run does not bend the
/// timeline either.
fn resume_stamp(wall_now: f64, log: &hlog::LogContents) -> f64 {
    continuation_stamp(wall_now, log.start_time, log.end())
}

/// Where a continued log's next interval starts (seconds since its
/// `start_time`): the wall clock's gap shows, but never before `not_before`,
/// the log's end.
pub fn continuation_stamp(wall_now: f64, start_time: f64, not_before: f64) -> f64 {
    (wall_now - start_time).max(not_before)
}

pub fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The paced probe runs of one interval: steal, rtt to `peers`, and fsync
/// in `dir`.
pub fn paced_steps(
    schedule: &Schedule,
    dir: Option<&std::path::Path>,
    peers: &[Peer],
) -> Vec<(ProbeName, Value)> {
    let slice = HumanDuration(schedule.slice).to_string();
    let mut steal = json!({ "duration": slice, "interval": "1s" });
    // One busy thread on one CPU keeps the soak light; a neighbour that
    // takes the host's CPUs shows on every vCPU.
    if let Some(cpu) = first_allowed_cpu() {
        steal["cpus"] = json!(cpu.to_string());
    }
    let mut steps = vec![(infraqual_probes::steal::NAME, steal)];
    if !peers.is_empty() {
        let targets: Vec<Value> = peers
            .iter()
            .map(|p| json!({ "node": p.node, "address": p.addr.ip(), "port": p.addr.port() }))
            .collect();
        steps.push((
            infraqual_probes::rtt::NAME,
            json!({
                "targets": targets,
                "kinds": ["udp", "tcp_rr"],
                "rate": RTT_RATE_PER_SEC,
                // Both kinds to every peer share one slice.
                "count": (RTT_RATE_PER_SEC as u64 * schedule.slice.as_secs()
                    / (2 * peers.len() as u64))
                    .max(10),
                "time_limit": HumanDuration(schedule.slice * 2).to_string(),
            }),
        ));
    }
    if let Some(dir) = dir {
        steps.push((
            infraqual_probes::fsync::NAME,
            json!({
                "dir": dir,
                "mode": "etcd-wal",
                "rate": FSYNC_RATE_PER_SEC,
                "duration": slice,
                // The WAL alone, as the soak's log sizes and files in --dir
                // were measured; etcd's backend is a qualify/probe figure.
                "backend_interval": "0s",
            }),
        ));
    }
    steps
}

/// The lowest CPU this process may run on (`Cpus_allowed_list: 0-1,4`).
fn first_allowed_cpu() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    list.trim().split([',', '-']).next()?.parse().ok()
}

/// Moves a slice's histograms, judged checks and timeline numbers into the
/// interval's record.
pub fn collect(
    result: &ProbeResult,
    facts: &mut IntervalFacts,
    series: &mut Vec<(String, infraqual_probes::LatencyHistogram)>,
) {
    for (name, m) in result.metrics.iter().filter(|(_, m)| m.unit == "ns") {
        match m.histogram() {
            Ok(h) => series.push((format!("{}/{name}", result.probe), h)),
            Err(e) => eprintln!("soak: {}/{name}: {e}", result.probe),
        }
    }
    for v in &result.verdicts {
        if let Some(observed) = v.observed {
            facts.checks.insert(v.check.clone(), observed);
        }
    }
    for key in windows::TIMELINE_FACTS {
        if let Some((probe, fact)) = key.split_once('.') {
            if probe == result.probe.as_str() {
                if let Some(x) = result.facts.get(fact).and_then(Value::as_f64) {
                    facts.values.insert((*key).to_string(), x);
                }
            }
        }
    }
}

/// Three decimals, as the soak's facts are written.
pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::hlog::{Interval, IntervalFacts, LogContents};
    use super::*;

    fn log_ending_at(start_time: f64, end: f64) -> LogContents {
        LogContents {
            start_time,
            intervals: vec![Interval {
                facts: IntervalFacts {
                    start: end - 300.0,
                    length: 300.0,
                    ..Default::default()
                },
                series: Vec::new(),
            }],
        }
    }

    #[test]
    fn a_restart_stamps_from_the_wall_clock_but_never_before_the_logs_end() {
        let log = log_ending_at(1_000.0, 600.0);
        assert_eq!(
            resume_stamp(5_000.0, &log),
            4_000.0,
            "the gap while dead shows"
        );
        assert_eq!(
            resume_stamp(1_200.0, &log),
            600.0,
            "a clock set back does not overlap earlier intervals"
        );
        assert_eq!(resume_stamp(0.0, &log), 600.0, "nor one before the epoch");
    }

    #[test]
    fn a_continued_soak_owes_whole_intervals_of_what_its_for_still_allows() {
        let m = |s: u64| Duration::from_secs(s);
        assert_eq!(still_owed(m(86_400), m(300), m(3_600)), Some(m(82_800)));
        assert_eq!(
            still_owed(m(60), m(10), m(26)),
            Some(m(30)),
            "34 s: 3 intervals"
        );
        assert_eq!(still_owed(m(60), m(10), m(54)), Some(m(10)), "6 s: one");
        assert_eq!(still_owed(m(60), m(10), m(56)), None, "4 s: none");
        assert_eq!(still_owed(m(60), m(10), m(600)), None, "dead past its end");
        assert!(Schedule::continuing(m(4), m(4)).is_ok());
        assert!(Schedule::continuing(m(3), m(4)).is_err());
    }

    #[test]
    fn schedules_slice_a_quarter_of_the_interval_within_bounds() {
        let s = Schedule::new(Duration::from_secs(86_400), Duration::from_secs(300)).unwrap();
        assert_eq!(s.slice, Duration::from_secs(30));
        let s = Schedule::new(Duration::from_secs(24), Duration::from_secs(4)).unwrap();
        assert_eq!(s.slice, Duration::from_secs(1));
        let s = Schedule::new(Duration::from_secs(60), Duration::from_secs(10)).unwrap();
        assert_eq!(s.slice, Duration::from_secs(2), "whole seconds");
    }
}
