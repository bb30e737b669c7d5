//! `infraqual etcd RUN_DIR [--members a,b,c]`: predicted put commit latency
//! per placement and leader, the best placement, etcd's timing flags and
//! verdict lines, from a run's fsync and rtt results. Exit 1 when a verdict
//! fails, 2 when the run cannot support a prediction.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infraqual_probes::Status;
use infraqual_reports::bundle;
use infraqual_reports::etcd::{self, text, Options, RequestTime};

use crate::exit::Outcome;

#[derive(Args, Debug)]
pub struct EtcdArgs {
    /// A run bundle directory (runs/<run_id>) with fsync and rtt results.
    pub run_dir: PathBuf,
    /// Predict these members only (node names, comma-separated, at least 3);
    /// default: every 3- and 5-member placement among the measured nodes.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub members: Option<Vec<String>>,
    /// Monte Carlo draws per placement and leader.
    #[arg(long, value_name = "N", default_value_t = etcd::DEFAULT_SAMPLES,
          value_parser = clap::value_parser!(u32).range(1_000..=1_000_000))]
    pub samples: u32,
    /// Seed of the draws (same seed, same figures).
    #[arg(long, value_name = "N", default_value_t = etcd::DEFAULT_SEED)]
    pub seed: u64,
    /// etcd's own request time, measured: put latencies in nanoseconds, one
    /// per line, of an etcd cluster of the same size with its data
    /// directories on tmpfs and the client beside the leader, less the
    /// quorum's round trip (scripts/bench-etcd-cluster writes one, the
    /// cluster placed as the real one). Each predicted put adds a draw of
    /// it and the wait for the leader's backend commit; without, the
    /// prediction is the commit alone.
    #[arg(long, value_name = "FILE")]
    pub request_time: Option<PathBuf>,
    /// Print the prediction as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EtcdArgs) -> Result<Outcome> {
    let record = bundle::load(&args.run_dir)
        .with_context(|| format!("cannot read run bundle {}", args.run_dir.display()))?;
    let options = Options {
        samples: args.samples,
        seed: args.seed,
    };
    let request_time = match &args.request_time {
        Some(path) => Some(RequestTime::read(path).context("--request-time")?),
        None => None,
    };
    let prediction = etcd::predict_with_request_time(
        &record,
        args.members.as_deref(),
        &record.profile,
        options,
        request_time.as_ref(),
    )
    .with_context(|| format!("{}: no etcd prediction", args.run_dir.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&prediction).context("encoding the prediction")?
        );
    } else {
        print!("{}", text::render(&prediction));
    }
    let failed = prediction
        .verdicts
        .iter()
        .any(|v| v.verdict.status == Status::Fail);
    Ok(if failed {
        Outcome::CheckFailed
    } else {
        Outcome::Pass
    })
}
