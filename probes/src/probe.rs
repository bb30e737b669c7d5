//! What a probe declares about itself. Each probe implements [`Probe`] in its
//! own module; `registry.rs` lists them. The harness (CLI, qualify, agent,
//! coordinator) and the reports (compare, charts, report sections) read
//! these declarations instead of matching on probe names, so adding a probe
//! touches its own folder, one registry line and its CLI arguments file.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::privilege::Capability;
use crate::profile::Profile;
use crate::result::ProbeResult;

/// A probe's name, as the CLI, plans, agents and run.json spell it. Only
/// registered names parse or deserialise, so a value of this type always
/// names a probe this build can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeName(&'static str);

impl ProbeName {
    /// For a probe's own `Probe::NAME`; everything else gets names from the
    /// registry (parse, deserialise, `ProbeName::ALL`).
    pub const fn declare(name: &'static str) -> Self {
        ProbeName(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The probe's declaration.
    pub fn descriptor(self) -> &'static ProbeDescriptor {
        crate::registry::descriptor(self)
    }
}

impl fmt::Display for ProbeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<ProbeName> for String {
    fn from(name: ProbeName) -> String {
        name.0.to_string()
    }
}

impl FromStr for ProbeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::registry::lookup(s.trim()).ok_or_else(|| {
            format!(
                "unknown probe `{s}` (available: {})",
                crate::registry::names()
            )
        })
    }
}

/// Registry order: the order `qualify` and `run` execute probes in.
impl Ord for ProbeName {
    fn cmp(&self, other: &Self) -> Ordering {
        crate::registry::position(*self)
            .cmp(&crate::registry::position(*other))
            .then_with(|| self.0.cmp(other.0))
    }
}

impl PartialOrd for ProbeName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for ProbeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for ProbeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which direction of a number is good: for a profile check's thresholds
/// and for `compare`'s verdicts on a fact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    #[default]
    Lower,
    Higher,
}

/// A numeric fact whose meaning and direction are known, so `compare` may
/// judge a change in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JudgedFact {
    pub fact: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// The fact is an object of `<key>: number` (per mode/count, per pair).
    pub keyed: bool,
}

/// A latency metric that is measured for context and is not what the
/// probe qualifies: `compare` shows its change and interval but leaves it
/// out of the verdict, saying why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextMetric {
    pub metric: &'static str,
    /// Why its change is not a verdict on what the probe qualifies.
    pub why: &'static str,
}

/// A part of the report a probe has beyond the generic ones (percentile
/// distributions per metric, timelines per series group, facts tables).
/// The reports crate draws each; the probe only names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportPart {
    /// First-packet latency against the number of Services, per mode and
    /// position. A sweep's distribution charts then show only its largest
    /// count, where the modes differ.
    ServicesFirstPacket,
    /// Rule programming time against the number of Services.
    ServicesProgramming,
    /// Source-by-target round-trip heatmaps.
    RttHeatmaps,
    /// Per-pair round-trip tables and the region table.
    RttTables,
    /// UDP loss against the offered packet rate, per path.
    ThroughputUdpLoss,
}

/// What `qualify` passes to every probe when it chooses its parameters.
#[derive(Clone, Debug)]
pub struct QualifyOptions<'a> {
    /// Shorter runs: a smoke test, not a qualification.
    pub quick: bool,
    /// The directory on the disk under test, for probes that write.
    pub dir: &'a Path,
    /// `qualify --fsync-mode`: the fsync probe's judged mode.
    pub fsync_mode: crate::fsync::Mode,
}

/// Hard deadline of a job: the expected duration plus this, doubled where
/// the probe knows how long it should take.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(120);
/// Hard deadline of a job whose duration is not known in advance.
pub const DEADLINE_UNKNOWN: Duration = Duration::from_secs(30 * 60);

/// One probe's declaration, implemented by a unit type in the probe's module.
pub trait Probe {
    const NAME: ProbeName;
    /// The question the probe answers, one line (CLI help, docs).
    const ABOUT: &'static str;
    /// Loads the machine (CPU or disk): never overlaps with another heavy
    /// probe on the same machine.
    const HEAVY: bool;
    /// Measured between machines: the coordinator builds its `targets` from
    /// the agents' addresses, and `qualify` alone cannot run it.
    const PAIRWISE: bool = false;
    /// Capabilities without which it cannot run at all.
    const NEEDS: &'static [Capability] = &[];
    const JUDGED_FACTS: &'static [JudgedFact] = &[];
    const CONTEXT_METRICS: &'static [ContextMetric] = &[];
    const REPORT_PARTS: &'static [ReportPart] = &[];

    /// Parameters, with serde defaults: the one source of each default.
    type Params: Serialize + DeserializeOwned;

    fn validate(_params: &Self::Params) -> Result<(), ProbeError> {
        Ok(())
    }

    /// Directories it will write into, so an agent can confine them.
    fn writes_to(_params: &Self::Params) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The longest a job may take before it is cancelled; never unbounded.
    fn deadline(_params: &Self::Params) -> Duration {
        DEADLINE_UNKNOWN
    }

    /// The parameters `qualify` runs it with (pairwise probes are skipped
    /// there, so theirs are never asked for).
    fn qualify_params(opts: &QualifyOptions<'_>) -> Self::Params;

    fn run(params: &Self::Params, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError>;

    /// One result from several complete runs (two or more, in the order
    /// they ran): metrics merged by adding histograms, facts and verdicts
    /// derived again from the merge. The default (`rounds::merge_default`)
    /// judges percentile checks on the merged histograms and keeps the
    /// worst round's verdict for the others; a probe whose facts are more
    /// than percentiles re-derives them here.
    fn merge_rounds(
        rounds: Vec<ProbeResult>,
        profile: &Profile,
    ) -> Result<ProbeResult, ProbeError> {
        crate::rounds::merge_default(rounds, profile)
    }
}

/// A [`Probe`] with its parameter type erased to JSON (the form a CLI, a
/// plan and an agent request carry), so the registry can list every probe.
pub struct ProbeDescriptor {
    pub name: ProbeName,
    pub about: &'static str,
    pub heavy: bool,
    pub pairwise: bool,
    pub needs: &'static [Capability],
    pub judged_facts: &'static [JudgedFact],
    pub context_metrics: &'static [ContextMetric],
    pub report_parts: &'static [ReportPart],
    validate: fn(&Value) -> Result<(), ProbeError>,
    writes_to: fn(&Value) -> Result<Vec<PathBuf>, ProbeError>,
    deadline: fn(&Value) -> Result<Duration, ProbeError>,
    qualify_params: fn(&QualifyOptions<'_>) -> Value,
    run: fn(&Value, &ProbeContext) -> Result<ProbeResult, ProbeError>,
    merge_rounds: fn(Vec<ProbeResult>, &Profile) -> Result<ProbeResult, ProbeError>,
}

impl ProbeDescriptor {
    /// Parses and checks parameters without running anything, so an agent
    /// answers 400 and a plan fails at its line before a job starts.
    pub fn validate(&self, params: &Value) -> Result<(), ProbeError> {
        (self.validate)(params)
    }

    pub fn writes_to(&self, params: &Value) -> Result<Vec<PathBuf>, ProbeError> {
        (self.writes_to)(params)
    }

    pub fn deadline(&self, params: &Value) -> Result<Duration, ProbeError> {
        (self.deadline)(params)
    }

    pub fn qualify_params(&self, opts: &QualifyOptions<'_>) -> Value {
        (self.qualify_params)(opts)
    }

    /// Runs the probe; unknown or ill-typed parameters are `InvalidParam`.
    pub fn run(&self, params: &Value, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
        (self.run)(params, ctx)
    }

    /// The rounds of one node's runs as one result; one round is returned
    /// as it is (its `rounds` stays empty, as for a probe run once).
    pub fn merge_rounds(
        &self,
        mut rounds: Vec<ProbeResult>,
        profile: &Profile,
    ) -> Result<ProbeResult, ProbeError> {
        if rounds.len() == 1 {
            if let Some(only) = rounds.pop() {
                return Ok(only);
            }
        }
        (self.merge_rounds)(rounds, profile)
    }
}

/// The descriptor of probe `P`; `registry.rs` lists one per probe.
pub const fn describe<P: Probe>() -> ProbeDescriptor {
    ProbeDescriptor {
        name: P::NAME,
        about: P::ABOUT,
        heavy: P::HEAVY,
        pairwise: P::PAIRWISE,
        needs: P::NEEDS,
        judged_facts: P::JUDGED_FACTS,
        context_metrics: P::CONTEXT_METRICS,
        report_parts: P::REPORT_PARTS,
        validate: validate_erased::<P>,
        writes_to: writes_to_erased::<P>,
        deadline: deadline_erased::<P>,
        qualify_params: qualify_params_erased::<P>,
        run: run_erased::<P>,
        merge_rounds: P::merge_rounds,
    }
}

fn parse<P: Probe>(params: &Value) -> Result<P::Params, ProbeError> {
    let value = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params.clone()
    };
    serde_json::from_value(value)
        .map_err(|e| ProbeError::invalid(format!("{} parameters", P::NAME), e.to_string()))
}

fn validate_erased<P: Probe>(params: &Value) -> Result<(), ProbeError> {
    P::validate(&parse::<P>(params)?)
}

fn writes_to_erased<P: Probe>(params: &Value) -> Result<Vec<PathBuf>, ProbeError> {
    Ok(P::writes_to(&parse::<P>(params)?))
}

fn deadline_erased<P: Probe>(params: &Value) -> Result<Duration, ProbeError> {
    Ok(P::deadline(&parse::<P>(params)?))
}

fn qualify_params_erased<P: Probe>(opts: &QualifyOptions<'_>) -> Value {
    to_json(&P::qualify_params(opts))
}

fn run_erased<P: Probe>(params: &Value, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    let params = parse::<P>(params)?;
    P::validate(&params)?;
    P::run(&params, ctx)
}

/// Parameters as the JSON object a plan or an agent request carries.
/// Serialising plain data structs cannot fail; `Null` would read back as
/// the defaults if it ever did.
fn to_json<T: Serialize>(params: &T) -> Value {
    serde_json::to_value(params).unwrap_or(Value::Null)
}

/// A probe's own parameters as the `params` object of its result.
pub fn params_object<T: Serialize>(params: &T) -> serde_json::Map<String, Value> {
    match to_json(params) {
        Value::Object(m) => m,
        _ => Default::default(),
    }
}

/// `duration × 2 + slack`: the deadline of a probe that runs for a known time.
pub fn deadline_for_duration(duration: Duration) -> Duration {
    duration.saturating_mul(2).saturating_add(DEADLINE_SLACK)
}
