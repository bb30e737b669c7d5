//! The sweep: for each usable mode a fresh sandbox, and for each count
//! program from empty, read the rules back, sample first-packet latency at
//! the front, middle and end, add one service, clear.

use serde_json::{json, Map};

use super::connect::{self, Plan};
use super::layout::{self, positions, SERVICE_PORT};
use super::modes::{Backend, Mode};
use super::params::Params;
use super::results::{count_key, metric_key, round2, Medians};
use super::sandbox::Sandbox;
use super::{iptables, nftables, NAME};
use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::result::ProbeResult;

/// Per-count facts gathered over the sweep.
#[derive(Debug, Default)]
pub struct Outcome {
    pub programming_ms: Map<String, serde_json::Value>,
    pub update_ms: Map<String, serde_json::Value>,
    pub rules: Map<String, serde_json::Value>,
    pub rules_expected: Map<String, serde_json::Value>,
    pub medians: Medians,
    /// Modes whose tools are installed but refused to program the sandbox
    /// (iptables-legacy in a container without the legacy tables, say),
    /// with the tool's reason: skipped like a missing tool, not fatal.
    pub unusable: Map<String, serde_json::Value>,
}

pub fn expected_rules(mode: Mode, services: usize, endpoints: usize) -> usize {
    match mode {
        Mode::Nftables => nftables::expected_rules(services, endpoints),
        _ => iptables::expected_nat_rules(services, endpoints),
    }
}

pub fn run(
    backends: &[Backend],
    params: &Params,
    ctx: &ProbeContext,
    result: &mut ProbeResult,
) -> Result<Outcome, ProbeError> {
    let mut outcome = Outcome::default();
    for backend in backends {
        ctx.cancel.check(NAME)?;
        // A fresh pair of namespaces per mode: iptables-nft and nftables
        // leave empty base chains behind that would tax the next mode.
        let sandbox = Sandbox::create(params.endpoints)?;
        if let Err(reason) = usable_here(backend, &sandbox, params.endpoints) {
            outcome
                .unusable
                .insert(backend.mode.to_string(), json!(reason));
            continue;
        }
        for &count in &params.counts {
            ctx.cancel.check(NAME)?;
            measure_count(backend, &sandbox, count, params, ctx, result, &mut outcome)?;
        }
    }
    Ok(outcome)
}

/// Programs and clears one service: a mode whose tool is installed can
/// still be refused by this kernel or container, and that is a skip with
/// the tool's own words, while a failure later in the sweep stays an error.
fn usable_here(backend: &Backend, sandbox: &Sandbox, endpoints: usize) -> Result<(), String> {
    backend
        .program_full(&sandbox.node, 1, endpoints)
        .and_then(|_| backend.clear(&sandbox.node))
        .map_err(|err| format!("installed, but refused to program a namespace here: {err}"))
}

fn measure_count(
    backend: &Backend,
    sandbox: &Sandbox,
    count: usize,
    params: &Params,
    ctx: &ProbeContext,
    result: &mut ProbeResult,
    outcome: &mut Outcome,
) -> Result<(), ProbeError> {
    let mode = backend.mode;
    let key = count_key(mode, count);
    let e = params.endpoints;

    let programming = backend.program_full(&sandbox.node, count, e)?;
    outcome
        .programming_ms
        .insert(key.clone(), json!(round2(programming.as_secs_f64() * 1e3)));

    let rules = backend.read_back_rules(&sandbox.node)?;
    let expected = expected_rules(mode, count, e);
    outcome.rules.insert(key.clone(), json!(rules));
    outcome.rules_expected.insert(key.clone(), json!(expected));
    if rules != expected {
        result.warn(format!(
            "{key}: {rules} rules read back, {expected} expected for {count} services x {e} endpoints"
        ));
    }

    let spots = positions(count);
    let plan = Plan {
        targets: spots
            .iter()
            .map(|(_, index)| std::net::SocketAddrV4::new(layout::vip(*index), SERVICE_PORT))
            .collect(),
        warmup: params.warmup,
        samples: params.samples,
        time_limit: params.sample_time_limit.0,
    };
    let sampled = connect::sample(&sandbox.node, &plan, &ctx.cancel)?;
    if let Some(bad) = sampled.identities.iter().find(|id| usize::from(**id) >= e) {
        return Err(ProbeError::Failed {
            probe: NAME.into(),
            message: format!("{key}: a service answered as endpoint {bad}, but only {e} exist"),
        });
    }
    if sampled.truncated {
        result.warn(format!(
            "{key}: sampling stopped at the {} limit with {} of {} samples per position",
            params.sample_time_limit,
            sampled.histograms.first().map_or(0, |h| h.len()),
            params.samples
        ));
    }
    if sampled.failures > 0 {
        result.warn(format!("{key}: {} connects failed", sampled.failures));
    }
    for ((position, _), hist) in spots.iter().zip(&sampled.histograms) {
        result.metric(&metric_key(mode, count, *position), hist, "ns")?;
        outcome
            .medians
            .add(mode, count, *position, hist.value_at_quantile(0.5));
    }

    ctx.cancel.check(NAME)?;
    // Validation keeps count <= MAX_SERVICES, so the added VIP still fits.
    let update = backend.program_add(&sandbox.node, count, e)?;
    outcome
        .update_ms
        .insert(key, json!(round2(update.as_secs_f64() * 1e3)));
    backend.clear(&sandbox.node)
}
