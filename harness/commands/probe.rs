//! `infraqual probe <name>`: one probe on this machine, JSON or a summary.

use anyhow::{Context, Result};
use infraqual_probes::{registry, ProbeContext};

use crate::exit::Outcome;
use crate::probe_args::{load_profile, ProbeCommand};
use crate::{signals, table};

pub fn run(command: &ProbeCommand) -> Result<Outcome> {
    let (name, params, common) = command.resolve();
    let params = params?;
    let profile = load_profile(&common.profile)?;
    let mut ctx = ProbeContext::new(&common.node, profile);
    ctx.cancel = signals::cancel_on_signals();

    let result = registry::run(name, &params, &ctx).with_context(|| format!("probe {name}"))?;

    if common.json {
        let text = serde_json::to_string_pretty(&result).context("serializing the result")?;
        println!("{text}");
    } else {
        print!("{}", table::probe_summary(&result));
    }
    Ok(Outcome::from_status(result.worst_status()))
}
