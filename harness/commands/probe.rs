//! `infraqual probe <name>`: one probe on this machine, JSON or a summary;
//! with `--rounds N`, N complete runs merged into one result.

use anyhow::{Context, Result};
use infraqual_probes::{registry, ProbeContext, ProbeError};

use crate::exit::Outcome;
use crate::probe_args::{load_profile, ProbeCommand};
use crate::progress::StepProgress;
use crate::rounds::{check_over_flag, step_label, RoundsOf, Spacing};
use crate::{signals, table};

pub fn run(command: &ProbeCommand) -> Result<Outcome> {
    let (name, params, common) = command.resolve();
    check_over_flag(common.over, common.rounds)?;
    let params = params?;
    let profile = load_profile(&common.profile)?;
    let mut ctx = ProbeContext::new(&common.node, profile);
    ctx.cancel = signals::cancel_on_signals();

    let mut rounds = RoundsOf::new(name, common.rounds);
    let progress = StepProgress::start(common.rounds as usize);
    let mut cut_short = None;
    let spacing = Spacing::start(common.over, common.rounds);
    for round in 1..=common.rounds {
        let label = step_label(name, round, common.rounds);
        if !spacing.wait_for(round, &label, &ctx.cancel, &progress) {
            cut_short = Some("cancelled");
            break;
        }
        progress.step(label);
        match registry::run(name, &params, &ctx) {
            Ok(result) => rounds.push(result),
            // Rounds that completed before a cancellation are still worth
            // keeping; a cancelled first round is an error as before.
            Err(ProbeError::Cancelled { .. }) if rounds.completed() > 0 => {
                cut_short = Some("cancelled");
                break;
            }
            Err(err) if common.rounds > 1 => {
                return Err(err)
                    .with_context(|| format!("probe {name}: round {round}/{}", common.rounds));
            }
            Err(err) => return Err(err).with_context(|| format!("probe {name}")),
        }
        progress.done_one();
    }
    progress.finish();
    let result = rounds
        .merge(&ctx.profile, cut_short)
        .context("no round completed")?
        .with_context(|| format!("probe {name}: merging its rounds"))?;

    if common.json {
        let text = serde_json::to_string_pretty(&result).context("serializing the result")?;
        println!("{text}");
    } else {
        print!("{}", table::probe_summary(&result));
    }
    if cut_short.is_some() {
        return Ok(Outcome::Incomplete);
    }
    Ok(Outcome::from_status(result.worst_status()))
}
