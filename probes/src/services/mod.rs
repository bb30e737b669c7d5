//! The services probe: what do 10 -> 10,000 Kubernetes Services cost per
//! packet? In a private pair of network namespaces it programs N ClusterIP
//! services in kube-proxy's real layouts (iptables with the legacy and the
//! nf_tables backend, nftables; IPVS where the kernel has it), with the same
//! batch tools kube-proxy uses, and times the programming, the addition of
//! one more service, and the first packet (TCP connect) to services at the
//! front, middle and end of the list.

#![forbid(unsafe_code)]

mod connect;
mod hash;
pub mod iptables;
pub mod layout;
pub mod modes;
pub mod nftables;
mod params;
mod results;
mod sandbox;
mod servers;
mod sweep;

#[cfg(test)]
mod tests;

use std::time::Instant;

use serde_json::{json, Map, Value};

pub use modes::Mode;
pub use params::Params;
pub use sandbox::sweep_orphans;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::privilege::{self, Capability};
use crate::probe::{Better, JudgedFact, Probe, ProbeName, QualifyOptions, ReportPart};
use crate::result::ProbeResult;

pub const NAME: ProbeName = ProbeName::declare("services");

/// The services probe's declaration.
pub struct Services;

impl Probe for Services {
    const NAME: ProbeName = NAME;
    const ABOUT: &'static str =
        "What do 10 -> 10,000 Services cost per packet? kube-proxy layouts in a private namespace.";
    const HEAVY: bool = true;
    const NEEDS: &'static [Capability] = &[Capability::NetAdmin, Capability::SysAdmin];
    const JUDGED_FACTS: &'static [JudgedFact] = &[
        lower_keyed("programming_ms", "ms"),
        lower_keyed("update_ms", "ms"),
        lower_keyed("slope_us_per_1000", "µs per 1000"),
    ];
    const REPORT_PARTS: &'static [ReportPart] = &[
        ReportPart::ServicesFirstPacket,
        ReportPart::ServicesProgramming,
    ];
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ProbeError> {
        params.validated().map(|_| ())
    }

    fn qualify_params(opts: &QualifyOptions<'_>) -> Params {
        let mut params = Params::default();
        if opts.quick {
            params.counts = QUICK_COUNTS.to_vec();
        }
        params
    }

    fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        run(params, ctx)
    }
}

/// `qualify --quick`: the slope shows by 1,000 in iptables modes.
const QUICK_COUNTS: [usize; 3] = [10, 100, 1000];

const fn lower_keyed(fact: &'static str, unit: &'static str) -> JudgedFact {
    JudgedFact {
        fact,
        unit,
        better: Better::Lower,
        keyed: true,
    }
}

pub fn run(params: &Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    let params = params.validated()?;
    for (cap, why) in [
        (
            Capability::NetAdmin,
            "it programs iptables/nftables rules and veth links",
        ),
        (
            Capability::SysAdmin,
            "it creates and enters network namespaces",
        ),
    ] {
        if !privilege::has(cap) {
            return Err(ProbeError::MissingCapability {
                probe: NAME.into(),
                capability: cap.name().into(),
                hint: format!("{why} inside private namespaces (never the host's); run as root"),
            });
        }
    }

    let started = Instant::now();
    let mut result = ProbeResult::new(NAME, &ctx.node);
    result.params = match serde_json::to_value(&params) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };

    let mut skipped = Map::new();
    let mut backends = Vec::new();
    let mut tools = Map::new();
    for mode in &params.modes {
        match modes::backend(*mode) {
            Ok(backend) => {
                tools.insert(mode.to_string(), json!(backend.version));
                backends.push(backend);
            }
            Err(reason) => {
                skipped.insert(mode.to_string(), json!(reason));
            }
        }
    }

    for removed in sandbox::sweep_orphans() {
        result.warn(format!(
            "removed network namespace {removed}, left by an earlier services run that crashed"
        ));
    }
    let outcome = sweep::run(&backends, &params, ctx, &mut result)?;
    skipped.extend(outcome.unusable.clone());

    result.fact("programming_ms", outcome.programming_ms);
    result.fact("update_ms", outcome.update_ms);
    result.fact("rules", outcome.rules);
    result.fact("rules_expected", outcome.rules_expected);
    result.fact("skipped", skipped);
    result.fact("slope_us_per_1000", outcome.medians.slopes());
    result.fact("end_front_ratio", outcome.medians.end_front_ratios());
    result.fact("reference_kep3866", results::kep3866_reference());
    result.fact("tools", tools);
    result.fact("endpoints_per_service", params.endpoints as u64);
    result.fact(
        "method",
        "node namespace holds the rules and connects from the OUTPUT hook to Service VIPs in \
         198.18.128.0/17; endpoints are addresses in a second namespace behind a veth; each sample \
         is a new TCP connect (new conntrack entry, full NAT rule walk), timed around connect(2)",
    );
    if backends.len() == outcome.unusable.len() {
        result.warn("no proxy mode could run here; see facts.skipped");
    }
    result.finish(started);
    Ok(result)
}
