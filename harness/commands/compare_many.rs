//! `infraqual compare RUN_A RUN_B RUN_C ...`: providers side by side, the
//! first run the baseline of the others. Exit 1 when any run regressed
//! against the baseline, 0 otherwise, 2 on bad input.

use anyhow::{bail, Result};
use infraqual_reports::bundle::RunRecord;
use infraqual_reports::charts::slug;
use infraqual_reports::compare::multi::{self, output, MultiComparison};
use infraqual_reports::compare::CompareOptions;

use super::compare::{default_out_dir, dir_label, load_run, write_artifacts, CompareArgs};
use crate::exit::Outcome;
use crate::table;

/// --label in run order; else each run's node name when every run has one
/// node and the names differ; else the plans' names when they differ; else
/// the directory names.
fn labels(args: &CompareArgs, runs: &[RunRecord]) -> Result<Vec<String>> {
    if !args.labels.is_empty() {
        if args.labels.len() != runs.len() {
            bail!(
                "--label: {} given for {} runs (give one per run, in order)",
                args.labels.len(),
                runs.len()
            );
        }
        return Ok(args.labels.clone());
    }
    let node_names: Vec<String> = runs
        .iter()
        .filter_map(|r| match r.nodes.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        })
        .collect();
    let distinct = |names: &[String]| {
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted.dedup();
        sorted.len() == names.len()
    };
    if node_names.len() == runs.len() && distinct(&node_names) {
        return Ok(node_names);
    }
    let plan_names: Vec<String> = runs
        .iter()
        .filter_map(|r| Some(r.plan.get("name")?.as_str()?.to_string()))
        .collect();
    if plan_names.len() == runs.len() && distinct(&plan_names) {
        return Ok(plan_names);
    }
    Ok(args.runs.iter().map(|d| dir_label(d)).collect())
}

pub fn run(args: &CompareArgs) -> Result<Outcome> {
    if args.label_a.is_some() || args.label_b.is_some() {
        bail!("--label-a/--label-b name two runs: with more, repeat --label once per run");
    }
    let runs: Vec<RunRecord> = args
        .runs
        .iter()
        .map(|d| load_run(d))
        .collect::<Result<_>>()?;
    let labels = labels(args, &runs)?;
    let mut opts = CompareOptions::new(&labels[0], &labels[0]);
    opts.noise = args.noise;
    opts.seed = args.seed;
    opts.bootstrap.resamples = args.resamples as usize;
    let refs: Vec<&RunRecord> = runs.iter().collect();
    let m = multi::compare_many(&refs, &labels, &opts);
    if m.rows.is_empty() {
        bail!("the runs share no metric or known fact with the first: nothing to compare");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let names: Vec<String> = labels.iter().map(|l| slug(l)).collect();
        default_out_dir(&args.runs).join(format!("compare-{}", names.join("-vs-")))
    });
    write_artifacts(&out, &output::artifacts(&m)?)?;
    print_terminal(&m);
    println!("compare: {}", out.join("compare.html").display());
    if let Some(path) = &args.junit {
        let suites: Vec<_> = m
            .pairwise
            .iter()
            .flat_map(infraqual_reports::compare::output::junit::suites)
            .collect();
        super::junit::write(
            path,
            &format!("infraqual compare {}", labels.join(" vs ")),
            &suites,
        )?;
    }
    Ok(if m.regressed() {
        Outcome::CheckFailed
    } else {
        Outcome::Pass
    })
}

fn print_terminal(m: &MultiComparison) {
    let header = output::header(m);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print!("{}", table::render(&header, &output::rows(m)));
    println!();
    for o in &m.overall {
        println!("{}", o.sentence());
    }
}
