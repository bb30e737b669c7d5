//! `infraqual qualify`: every available probe on this machine, in order,
//! each result written into the run bundle as soon as it finishes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use infraqual_probes::probe::QualifyOptions;
use infraqual_probes::{fsync, privilege};
use infraqual_probes::{
    registry, ProbeContext, ProbeDescriptor, ProbeError, ProbeName, ProbeResult, Verdict,
};
use infraqual_reports::bundle::{BundleWriter, RunVerdict};
use infraqual_reports::render;
use serde_json::{json, Value};

use crate::commands::local_run::LocalRunArgs;
use crate::exit::Outcome;
use crate::probe_args::fsync::ModeArg;
use crate::probe_args::load_profile;
use crate::progress::StepProgress;
use crate::rounds::{
    check_over_flag, parse_over_flag, parse_rounds_flag, step_label, RoundsOf, Spacing,
};
use crate::{signals, table};
use infraqual_probes::rounds::partial_warning;
use infraqual_probes::units::HumanDuration;

#[derive(Args, Debug)]
pub struct QualifyArgs {
    /// Shorter runs of every probe (a smoke test, not a qualification).
    #[arg(long)]
    pub quick: bool,
    /// Directory for the fsync probe's files (the disk to qualify).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// The fsync probe's judged mode: etcd-wal (etcd's WAL and backend at
    /// 150 syncs/s, fio's recipe run beside it as the reference) or
    /// fio-etcd (the recipe alone, back to back).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ModeArg::from(fsync::QUALIFY_MODE))]
    pub fsync_mode: ModeArg,
    /// Comma-separated probes to run (default: all available).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_probe)]
    pub probes: Option<Vec<ProbeName>>,
    /// Complete runs of each probe, interleaved (round 1 of every probe,
    /// then round 2, ...), merged into one result that keeps every round
    /// (1 ..= 100).
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_rounds_flag, allow_hyphen_values = true)]
    pub rounds: u32,
    /// Spread the rounds evenly over DURATION (first at the start, last at
    /// the end, e.g. 5m; 1s ..= 24h; needs --rounds 2 or more), so they see
    /// the drift a later run would.
    #[arg(long, value_name = "DURATION", value_parser = parse_over_flag, allow_hyphen_values = true)]
    pub over: Option<Duration>,
    #[command(flatten)]
    pub run: LocalRunArgs,
    /// After the run, save its run.json and plan.toml as baseline NAME
    /// (<out>/baselines/NAME/) for `infraqual compare --baseline NAME RUN`.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Also write the checks as JUnit XML to FILE (one testcase per check per node).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn parse_probe(s: &str) -> Result<ProbeName, String> {
    s.parse()
}

/// What qualify does for one probe on this machine.
enum Step {
    Run(Value),
    Skip(String),
}

/// A probe's step: its declared qualify parameters, or why it cannot run
/// on this machine alone.
fn step_for(probe: &ProbeDescriptor, opts: &QualifyOptions<'_>) -> Step {
    if probe.pairwise {
        return Step::Skip(format!(
            "{} measures between machines: run it from a plan (`infraqual run`) or in the lab",
            probe.name
        ));
    }
    let missing: Vec<&str> = probe
        .needs
        .iter()
        .filter(|c| !privilege::has(**c))
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        return Step::Skip(format!("needs {}: run as root", missing.join(" and ")));
    }
    Step::Run(probe.qualify_params(opts))
}

/// The directory on the disk under test: --dir, or a fresh one under the
/// current directory that is removed afterwards.
struct DiskDir {
    path: PathBuf,
    remove: bool,
}

impl DiskDir {
    fn locate(args: &QualifyArgs) -> Result<Self> {
        if let Some(dir) = &args.dir {
            if !dir.is_dir() {
                anyhow::bail!("--dir {}: not an existing directory", dir.display());
            }
            return Ok(DiskDir {
                path: dir.clone(),
                remove: false,
            });
        }
        let path = std::env::current_dir()
            .context("reading the current directory")?
            .join(format!(".infraqual-fsync-{}", std::process::id()));
        Ok(DiskDir {
            path,
            remove: false,
        })
    }

    /// Creates the scratch directory (not a --dir) once a step writes there.
    fn create(&mut self, args: &QualifyArgs) -> Result<()> {
        if args.dir.is_none() && !self.remove {
            std::fs::create_dir(&self.path)
                .with_context(|| format!("creating {}", self.path.display()))?;
            self.remove = true;
        }
        Ok(())
    }
}

impl Drop for DiskDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(args: &QualifyArgs) -> Result<Outcome> {
    check_over_flag(args.over, args.rounds)?;
    if let Some(name) = &args.save_baseline {
        // A bad name fails before anything is measured.
        infraqual_reports::baseline::validate_name(name)?;
    }
    let profile = load_profile(&args.run.profile)?;
    let probes: Vec<ProbeName> = match &args.probes {
        Some(list) if list.is_empty() => anyhow::bail!("--probes: empty list"),
        Some(list) => registry::names_in_order()
            .filter(|p| list.contains(p))
            .collect(),
        // Network probes need a second machine; qualify runs them only
        // when asked (and then explains the skip).
        None => registry::all()
            .iter()
            .filter(|d| !d.pairwise)
            .map(|d| d.name)
            .collect(),
    };
    let mut disk = DiskDir::locate(args)?;
    let opts = QualifyOptions {
        quick: args.quick,
        dir: &disk.path,
        fsync_mode: args.fsync_mode.into(),
    };
    let steps: Vec<(ProbeName, Step)> = probes
        .iter()
        .map(|p| (*p, step_for(p.descriptor(), &opts)))
        .collect();
    let writes = steps.iter().any(|(p, step)| match step {
        Step::Run(params) => p
            .descriptor()
            .writes_to(params)
            .is_ok_and(|dirs| !dirs.is_empty()),
        Step::Skip(_) => false,
    });
    if writes {
        disk.create(args)?;
    }

    let plan = plan_of(args, &profile.name, &steps);
    let plan_toml = toml::to_string_pretty(&plan).context("writing the plan as TOML")?;
    let mut bundle = BundleWriter::create(&args.run.out, &plan_toml, plan, profile.clone())
        .with_context(|| format!("--out {}", args.run.out.display()))?;
    bundle.add_node(&args.run.node, Default::default());

    let mut ctx = ProbeContext::new(&args.run.node, profile);
    ctx.cancel = signals::cancel_on_signals();
    run_rounds(&mut bundle, &steps, args, &ctx)?;

    let record = bundle.finish()?;
    let dir = bundle.dir().to_path_buf();
    render::render_bundle(&dir, &record).with_context(|| format!("rendering {}", dir.display()))?;

    print_summary(&record);
    println!("report: {}", dir.join("report.html").display());
    super::junit::write_run(args.junit.as_deref(), &record)?;
    if let Some(name) = &args.save_baseline {
        let saved = infraqual_reports::baseline::save(&args.run.out, name, &dir)?;
        println!("baseline {name}: {}", saved.display());
    }
    Ok(Outcome::from_verdict(record.verdict))
}

/// Round 1 of every probe, then round 2, ...: slow drift on the machine
/// lands in every probe alike, and heavy probes still run one at a time.
/// A probe's result is written after its last round; a cancelled run
/// writes the rounds that completed, a failed round the probe's error.
fn run_rounds(
    bundle: &mut BundleWriter,
    steps: &[(ProbeName, Step)],
    args: &QualifyArgs,
    ctx: &ProbeContext,
) -> Result<()> {
    let node = &args.run.node;
    let mut rounds: Vec<Option<RoundsOf>> = steps
        .iter()
        .map(|(probe, _)| Some(RoundsOf::new(*probe, args.rounds)))
        .collect();
    let progress = StepProgress::start(steps.len() * args.rounds as usize);
    let spacing = Spacing::start(args.over, args.rounds);
    'rounds: for round in 1..=args.rounds {
        for ((probe, step), slot) in steps.iter().zip(rounds.iter_mut()) {
            let Some(state) = slot else {
                continue;
            };
            let label = step_label(*probe, round, args.rounds);
            if !spacing.wait_for(round, &label, &ctx.cancel, &progress) {
                break 'rounds;
            }
            progress.step(label);
            match step {
                Step::Skip(reason) => {
                    let mut skipped = ProbeResult::new(*probe, node);
                    skipped.verdicts.push(Verdict::skip(
                        &format!("{probe}.run"),
                        "",
                        reason.clone(),
                    ));
                    bundle.add_result(node, skipped)?;
                    *slot = None;
                }
                Step::Run(params) => match registry::run(*probe, params, ctx) {
                    Ok(result) => {
                        state.push(result);
                        if state.is_complete() {
                            write_merged(bundle, node, state, &ctx.profile, None)?;
                            *slot = None;
                        }
                    }
                    Err(ProbeError::Cancelled { .. }) => break 'rounds,
                    Err(err) => {
                        let message = if args.rounds > 1 {
                            format!("round {round}/{}: {err}", args.rounds)
                        } else {
                            err.to_string()
                        };
                        bundle.add_error(node, Some(probe.as_str()), &message)?;
                        *slot = None;
                    }
                },
            }
            progress.done_one();
        }
    }
    progress.finish();
    // Cancelled: the rounds that completed are kept, and the run says it
    // was cut short.
    for state in rounds.iter_mut().flatten() {
        let ran = state.completed();
        let message = if ran == 0 {
            "cancelled before it started".to_string()
        } else {
            write_merged(bundle, node, state, &ctx.profile, Some("cancelled"))?;
            partial_warning(ran, args.rounds, "cancelled")
        };
        bundle.add_error(node, Some(state.probe.as_str()), &message)?;
    }
    Ok(())
}

fn write_merged(
    bundle: &mut BundleWriter,
    node: &str,
    state: &mut RoundsOf,
    profile: &infraqual_probes::Profile,
    cut_short: Option<&str>,
) -> Result<()> {
    match state.merge(profile, cut_short) {
        Some(Ok(result)) => bundle.add_result(node, result)?,
        Some(Err(err)) => bundle.add_error(
            node,
            Some(state.probe.as_str()),
            &format!("merging its rounds: {err}"),
        )?,
        None => {}
    }
    Ok(())
}

fn plan_of(args: &QualifyArgs, profile: &str, steps: &[(ProbeName, Step)]) -> Value {
    let mut probes = serde_json::Map::new();
    for (probe, step) in steps {
        if let Step::Run(params) = step {
            probes.insert(probe.to_string(), without_nulls(params));
        }
    }
    let mut plan = json!({
        "name": format!("qualify-{}", args.run.node),
        "profile": profile,
        "out": args.run.out.display().to_string(),
        "quick": args.quick,
        "probes": probes,
    });
    if let (true, Some(map)) = (args.rounds > 1, plan.as_object_mut()) {
        map.insert("rounds".into(), args.rounds.into());
        if let Some(over) = args.over {
            map.insert("rounds_over".into(), HumanDuration(over).to_string().into());
        }
    }
    plan
}

/// TOML has no null: an absent optional parameter is left out of the plan,
/// which reads back as the same default.
fn without_nulls(params: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn print_summary(record: &infraqual_reports::bundle::RunRecord) {
    let mut rows = Vec::new();
    for node in &record.nodes {
        let results = node.inventory.iter().chain(node.results.iter());
        for result in results {
            for v in &result.verdicts {
                rows.push(table::verdict_row(&node.name, v));
            }
            rows.extend(table::reference_row(result));
        }
        for e in &node.errors {
            rows.push(vec![
                node.name.clone(),
                e.probe.clone().unwrap_or_else(|| "-".into()),
                "-".into(),
                "-".into(),
                "ERROR".into(),
                e.message.clone(),
            ]);
        }
    }
    print!("{}", table::render(&table::VERDICT_HEADER, &rows));
    let verdict = match record.verdict {
        RunVerdict::Pass => "PASS",
        RunVerdict::Fail => "FAIL",
        RunVerdict::Incomplete => "INCOMPLETE",
    };
    println!("verdict: {verdict}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_qualify_runs_writes_into_plan_toml() {
        let dir = std::path::Path::new("/var/lib/etcd-test");
        let modes = [fsync::Mode::EtcdWal, fsync::Mode::FioEtcd];
        for (quick, fsync_mode) in [false, true]
            .into_iter()
            .flat_map(|q| modes.map(|m| (q, m)))
        {
            let opts = QualifyOptions {
                quick,
                dir,
                fsync_mode,
            };
            for probe in registry::all().iter().filter(|d| !d.pairwise) {
                let params = without_nulls(&probe.qualify_params(&opts));
                let text =
                    toml::to_string_pretty(&json!({ "probes": { probe.name.as_str(): params } }))
                        .unwrap_or_else(|e| panic!("{}: {e}", probe.name));
                let back: toml::Value = toml::from_str(&text).unwrap();
                let back = serde_json::to_value(&back["probes"][probe.name.as_str()]).unwrap();
                probe
                    .validate(&back)
                    .unwrap_or_else(|e| panic!("{} reads back: {e}", probe.name));
            }
        }
    }
}
