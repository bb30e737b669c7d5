//! `infraqual qualify`: every available probe on this machine, in order,
//! each result written into the run bundle as soon as it finishes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infraqual_probes::privilege::{self, Capability};
use infraqual_probes::{registry, ProbeContext, ProbeName, ProbeResult, Verdict};
use infraqual_reports::bundle::{BundleWriter, RunVerdict};
use infraqual_reports::render;
use serde_json::{json, Value};

use crate::exit::Outcome;
use crate::probe_args::load_profile;
use crate::progress::StepProgress;
use crate::{signals, table};

#[derive(Args, Debug)]
pub struct QualifyArgs {
    /// Shorter runs of every probe (a smoke test, not a qualification).
    #[arg(long)]
    pub quick: bool,
    /// Directory for the fsync probe's files (the disk to qualify).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Comma-separated probes to run (default: all available).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_probe)]
    pub probes: Option<Vec<ProbeName>>,
    /// Where run bundles go.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,
    /// Threshold profile: a built-in name (etcd) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "etcd")]
    pub profile: String,
    /// Node name recorded in the results.
    #[arg(long, default_value = "local")]
    pub node: String,
    /// After the run, save its run.json and plan.toml as baseline NAME
    /// (<out>/baselines/NAME/) for `infraqual compare --baseline NAME RUN`.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
}

fn parse_probe(s: &str) -> Result<ProbeName, String> {
    s.parse()
}

/// What qualify does for one probe on this machine.
enum Step {
    Run(Value),
    Skip(String),
}

/// The parameters each probe gets from `qualify`: one line per probe.
fn step_for(probe: ProbeName, args: &QualifyArgs, fsync_dir: &std::path::Path) -> Step {
    let quick = args.quick;
    match probe {
        ProbeName::Inventory => Step::Run(json!({})),
        ProbeName::Steal => Step::Run(json!({ "duration": if quick { "5s" } else { "30s" } })),
        ProbeName::Fsync => Step::Run(json!({
            "dir": fsync_dir,
            "size": if quick { "4MiB" } else { "22MiB" },
        })),
        ProbeName::Services if !privilege::has(Capability::NetAdmin) => Step::Skip(
            "needs CAP_NET_ADMIN to build its private network namespace: run as root".into(),
        ),
        ProbeName::Rtt | ProbeName::Mtu => Step::Skip(format!(
            "{probe} measures between machines: run it from a plan (`infraqual run`) or in the lab"
        )),
        ProbeName::Services => Step::Run(json!({
            "counts": if quick { json!([10, 100, 1000]) } else { json!([10, 100, 1000, 5000, 10000]) },
        })),
    }
}

/// The fsync step's directory: --dir, or a fresh one under the current
/// directory that is removed afterwards.
struct FsyncDir {
    path: PathBuf,
    remove: bool,
}

impl FsyncDir {
    fn prepare(args: &QualifyArgs, needed: bool) -> Result<Self> {
        if let Some(dir) = &args.dir {
            if !dir.is_dir() {
                anyhow::bail!("--dir {}: not an existing directory", dir.display());
            }
            return Ok(FsyncDir {
                path: dir.clone(),
                remove: false,
            });
        }
        let path = std::env::current_dir()
            .context("reading the current directory")?
            .join(format!(".infraqual-fsync-{}", std::process::id()));
        if needed {
            std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        Ok(FsyncDir {
            path,
            remove: needed,
        })
    }
}

impl Drop for FsyncDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(args: &QualifyArgs) -> Result<Outcome> {
    if let Some(name) = &args.save_baseline {
        // A bad name fails before anything is measured.
        infraqual_reports::baseline::validate_name(name)?;
    }
    let profile = load_profile(&args.profile)?;
    let probes: Vec<ProbeName> = match &args.probes {
        Some(list) if list.is_empty() => anyhow::bail!("--probes: empty list"),
        Some(list) => ProbeName::ALL
            .iter()
            .copied()
            .filter(|p| list.contains(p))
            .collect(),
        // Network probes need a second machine; qualify runs them only
        // when asked (and then explains the skip).
        None => ProbeName::ALL
            .iter()
            .copied()
            .filter(|p| !crate::coordinator::plan::is_pairwise(*p))
            .collect(),
    };
    let fsync_dir = FsyncDir::prepare(args, probes.contains(&ProbeName::Fsync))?;
    let steps: Vec<(ProbeName, Step)> = probes
        .iter()
        .map(|p| (*p, step_for(*p, args, &fsync_dir.path)))
        .collect();

    let plan = plan_of(args, &profile.name, &steps);
    let plan_toml = toml::to_string_pretty(&plan).context("writing the plan as TOML")?;
    let mut bundle = BundleWriter::create(&args.out, &plan_toml, plan, profile.clone())
        .with_context(|| format!("--out {}", args.out.display()))?;
    bundle.add_node(&args.node, Default::default());

    let mut ctx = ProbeContext::new(&args.node, profile);
    ctx.cancel = signals::cancel_on_signals();
    let progress = StepProgress::start(steps.len());
    for (probe, step) in &steps {
        if ctx.cancel.is_cancelled() {
            bundle.add_error(
                &args.node,
                Some(probe.as_str()),
                "cancelled before it started",
            )?;
            continue;
        }
        progress.step(format!("{probe}"));
        match step {
            Step::Skip(reason) => {
                let mut skipped = ProbeResult::new(probe.as_str(), &args.node);
                skipped
                    .verdicts
                    .push(Verdict::skip(&format!("{probe}.run"), "", reason.clone()));
                bundle.add_result(&args.node, skipped)?;
            }
            Step::Run(params) => match registry::run(*probe, params, &ctx) {
                Ok(result) => bundle.add_result(&args.node, result)?,
                Err(err) => bundle.add_error(&args.node, Some(probe.as_str()), &err.to_string())?,
            },
        }
        progress.done_one();
    }
    progress.finish();

    let record = bundle.finish()?;
    let dir = bundle.dir().to_path_buf();
    render::render_bundle(&dir, &record).with_context(|| format!("rendering {}", dir.display()))?;

    print_summary(&record);
    println!("report: {}", dir.join("report.html").display());
    if let Some(name) = &args.save_baseline {
        let saved = infraqual_reports::baseline::save(&args.out, name, &dir)?;
        println!("baseline {name}: {}", saved.display());
    }
    Ok(Outcome::from_verdict(record.verdict))
}

fn plan_of(args: &QualifyArgs, profile: &str, steps: &[(ProbeName, Step)]) -> Value {
    let mut probes = serde_json::Map::new();
    for (probe, step) in steps {
        if let Step::Run(params) = step {
            probes.insert(probe.to_string(), params.clone());
        }
    }
    json!({
        "name": format!("qualify-{}", args.node),
        "profile": profile,
        "out": args.out.display().to_string(),
        "quick": args.quick,
        "probes": probes,
    })
}

pub fn print_summary(record: &infraqual_reports::bundle::RunRecord) {
    let mut rows = Vec::new();
    for node in &record.nodes {
        let results = node.inventory.iter().chain(node.results.iter());
        for result in results {
            for v in &result.verdicts {
                rows.push(table::verdict_row(&node.name, v));
            }
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
