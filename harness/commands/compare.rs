//! `infraqual compare RUN_A RUN_B` and `infraqual compare --baseline NAME
//! RUN`: every metric the runs share, judged from bootstrap intervals of the
//! recorded histograms against a noise threshold (with rounds on both sides,
//! or soak windows, intervals that include the variation from run to run).
//! Exit 1 when anything regressed beyond noise (a CI gate), 0 otherwise, 2
//! on bad input.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use infraqual_reports::atomic;
use infraqual_reports::baseline;
use infraqual_reports::bundle::{self, RunRecord};
use infraqual_reports::charts::slug;
use infraqual_reports::compare::output::{self, LATENCY_HEADER, REGION_HEADER, SCALAR_HEADER};
use infraqual_reports::compare::verdict::parse_noise;
use infraqual_reports::compare::{self, CompareOptions, Comparison, DEFAULT_SEED};

use crate::exit::Outcome;
use crate::table;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run bundle directories: RUN_A RUN_B [RUN_C ...] (the first is the
    /// baseline of the others), or RUN alone with --baseline.
    #[arg(value_name = "RUN", num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Compare RUN against the saved baseline NAME (saved by --save-baseline).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Where baselines are kept (default: the directory holding RUN).
    #[arg(long, value_name = "DIR", requires = "baseline")]
    pub baselines_in: Option<PathBuf>,
    /// Name of run A in tables and charts (default: its directory name).
    #[arg(long, value_name = "NAME")]
    pub label_a: Option<String>,
    /// Name of run B in tables and charts (default: its directory name).
    #[arg(long, value_name = "NAME")]
    pub label_b: Option<String>,
    /// Name of each run, in the order of the runs (repeat; default: the
    /// node's name when every run has one node, else the plan's name, else
    /// the directory name).
    #[arg(long = "label", value_name = "NAME")]
    pub labels: Vec<String>,
    /// Changes whose whole confidence interval stays within this are no change.
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = parse_noise)]
    pub noise: f64,
    /// Seed of the bootstrap resampling (same seed, same intervals).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Bootstrap resamples per metric.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub resamples: u64,
    /// Output directory (default: compare-<A>-vs-<B>/ beside the runs).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write the verdicts as JUnit XML to FILE (a regression is a failure).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

pub(super) fn dir_label(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

/// Without --out, the comparison goes next to the runs (beside the last
/// one), never into whatever directory the command was started from.
pub(super) fn default_out_dir(runs: &[PathBuf]) -> PathBuf {
    runs.last()
        .and_then(|r| r.canonicalize().ok())
        .and_then(|r| r.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(super) fn load_run(dir: &Path) -> Result<RunRecord> {
    if !dir.join("run.json").is_file() {
        bail!("{}: not a run bundle (no run.json)", dir.display());
    }
    Ok(bundle::load(dir)?)
}

/// (label, record) of A and B.
fn inputs(args: &CompareArgs) -> Result<((String, RunRecord), (String, RunRecord))> {
    match (&args.baseline, args.runs.as_slice()) {
        (Some(name), [run]) => {
            let runs_dir = match &args.baselines_in {
                Some(d) => d.clone(),
                None => run
                    .canonicalize()
                    .with_context(|| format!("{}", run.display()))?
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            };
            let (_, a) = baseline::load(&runs_dir, name)?;
            let b = load_run(run)?;
            Ok(((format!("baseline-{name}"), a), (dir_label(run), b)))
        }
        (Some(_), _) => bail!("--baseline NAME takes one RUN to compare against it"),
        (None, [a, b]) => Ok(((dir_label(a), load_run(a)?), (dir_label(b), load_run(b)?))),
        (None, _) => bail!("compare needs two runs (RUN_A RUN_B) or --baseline NAME RUN"),
    }
}

pub fn run(args: &CompareArgs) -> Result<Outcome> {
    if args.baseline.is_none() && args.runs.len() > 2 {
        return super::compare_many::run(args);
    }
    let ((default_a, a), (default_b, b)) = inputs(args)?;
    let label_a = args
        .label_a
        .clone()
        .or_else(|| args.labels.first().cloned())
        .unwrap_or(default_a);
    let label_b = args
        .label_b
        .clone()
        .or_else(|| args.labels.get(1).cloned())
        .unwrap_or(default_b);
    let mut opts = CompareOptions::new(&label_a, &label_b);
    opts.noise = args.noise;
    opts.seed = args.seed;
    opts.bootstrap.resamples = args.resamples as usize;

    let c = compare::compare(&a, &b, &opts);
    if c.is_empty() {
        bail!(
            "runs {} and {} share no metric or known fact: nothing to compare",
            a.run_id,
            b.run_id
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        default_out_dir(&args.runs).join(format!(
            "compare-{}-vs-{}",
            slug(&label_a),
            slug(&label_b)
        ))
    });
    write_outputs(&out, &c)?;
    print_terminal(&c);
    println!("compare: {}", out.join("compare.html").display());
    if let Some(path) = &args.junit {
        super::junit::write(
            path,
            &format!("infraqual compare {} vs {}", c.label_b, c.label_a),
            &output::junit::suites(&c),
        )?;
    }
    Ok(if c.regressed() {
        Outcome::CheckFailed
    } else {
        Outcome::Pass
    })
}

fn write_outputs(out: &Path, c: &Comparison) -> Result<()> {
    write_artifacts(out, &output::artifacts(c)?)
}

pub(super) fn write_artifacts(
    out: &Path,
    artifacts: &[infraqual_reports::export::Artifact],
) -> Result<()> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("--out {}", out.display()))?;
    for a in artifacts {
        atomic::write(&out.join(&a.relative_path), &a.bytes)?;
    }
    Ok(())
}

fn print_terminal(c: &Comparison) {
    println!(
        "A = {} (run {}), B = {} (run {})",
        c.label_a, c.run_a, c.label_b, c.run_b
    );
    if !c.latencies.is_empty() {
        println!();
        print!(
            "{}",
            table::render(&LATENCY_HEADER, &output::latency_rows(c))
        );
    }
    if !c.scalars.is_empty() {
        println!();
        print!("{}", table::render(&SCALAR_HEADER, &output::scalar_rows(c)));
    }
    if c.regions.is_some() {
        println!();
        print!("{}", table::render(&REGION_HEADER, &output::region_rows(c)));
    }
    println!();
    for line in &c.summary {
        println!("{line}");
    }
    for (side, list) in [("A", &c.only_in_a), ("B", &c.only_in_b)] {
        if !list.is_empty() {
            println!("only in {side}: {}", list.join(", "));
        }
    }
}
