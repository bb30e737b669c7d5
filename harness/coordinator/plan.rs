//! Plan files (docs/plan-files.md): TOML naming the agents, the probes
//! with their parameters, the threshold profile and the output directory.
//! Every error names the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use infraqual_probes::{registry, ProbeName, Profile};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// A plan's lease when it sets none: the agent cancels a job when no poll
/// came for this long.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PlanError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: Spanned<String>,
    #[serde(default)]
    profile: Option<Spanned<String>>,
    #[serde(default)]
    out: Option<String>,
    /// How long an agent keeps a job alive without hearing from us.
    #[serde(default)]
    lease: Option<Spanned<String>>,
    #[serde(default)]
    agents: Vec<Spanned<AgentEntry>>,
    #[serde(default)]
    discover: Option<Spanned<super::discovery::plan::DiscoverEntry>>,
    /// Complete runs of every probe (a probe's own `rounds` wins).
    #[serde(default)]
    rounds: Option<Spanned<toml::Value>>,
    /// Spread every probe's rounds over this span (a probe's own wins).
    #[serde(default)]
    rounds_over: Option<Spanned<toml::Value>>,
    #[serde(default)]
    probes: BTreeMap<Spanned<String>, Spanned<toml::Table>>,
    #[serde(default)]
    soak: Option<Spanned<super::soak_plan::SoakEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentEntry {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    client_cert: Option<Spanned<String>>,
    #[serde(default)]
    client_key: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    addresses: BTreeMap<String, Spanned<String>>,
}

#[derive(Clone, Debug)]
pub struct AgentPlan {
    pub name: String,
    pub url: hyper::Uri,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// The certificate the coordinator shows an agent that checks client
    /// certificates (`infraqual agent --client-ca`).
    pub client_identity: Option<crate::agent::ClientIdentity>,
    pub labels: BTreeMap<String, String>,
    pub addresses: BTreeMap<String, std::net::IpAddr>,
    /// Echo port per path when another agent of the node answers there
    /// (`[discover]` pairs a pod-network and a hostNetwork agent); other
    /// paths use this agent's own echo port.
    pub echo_ports: BTreeMap<String, u16>,
    /// The API of each such other agent: the run's echo nonce is
    /// registered there too, or its responder would not answer.
    pub echo_agents: Vec<hyper::Uri>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub text: String,
    pub name: String,
    pub profile: Profile,
    pub out: Option<PathBuf>,
    pub lease: std::time::Duration,
    pub agents: Vec<AgentPlan>,
    /// Agents to find by DNS instead of (never together with) `[[agents]]`.
    pub discover: Option<super::discovery::plan::DiscoverPlan>,
    /// Probe parameters as written, in execution order (ProbeName::ALL).
    pub probes: Vec<(ProbeName, Value)>,
    /// How many complete runs of each probe (`rounds`; 1 when unset).
    pub rounds: BTreeMap<ProbeName, u32>,
    /// The span each probe's rounds are spread over (`rounds_over`).
    pub rounds_over: BTreeMap<ProbeName, std::time::Duration>,
    /// `[soak]`: the agents soak instead of running probes.
    pub soak: Option<super::soak_plan::SoakPlan>,
}

pub(super) struct Locator<'a> {
    pub file: String,
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> PlanError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        PlanError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, &file, base).map(|mut p| {
            p.path = path.to_path_buf();
            p
        })
    }

    /// Parses and validates; relative paths in the plan are taken from `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Plan, PlanError> {
        let loc = Locator {
            file: file.to_string(),
            text,
        };
        let raw: PlanFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            loc.at(span, e.message().trim().replace('\n', " "))
        })?;

        let profile = match &raw.profile {
            None => Profile::default(),
            Some(spec) => match Profile::builtin(spec.get_ref()) {
                Some(p) => p,
                None => {
                    let p = base.join(spec.get_ref());
                    Profile::load(&p).map_err(|e| loc.at(spec.span(), e.to_string()))?
                }
            },
        };

        let lease = match &raw.lease {
            None => DEFAULT_LEASE,
            Some(text) => {
                let d = text
                    .get_ref()
                    .parse::<infraqual_probes::units::HumanDuration>()
                    .map_err(|e| loc.at(text.span(), e))?
                    .0;
                if d < std::time::Duration::from_secs(2) || d > std::time::Duration::from_secs(600)
                {
                    return Err(loc.at(text.span(), "lease must be between 2s and 10m"));
                }
                d
            }
        };

        let discover = match &raw.discover {
            Some(entry) if !raw.agents.is_empty() => return Err(loc.at(
                entry.span(),
                "[discover] and [[agents]] together: a node could be listed twice; use one of them",
            )),
            Some(entry) => Some(super::discovery::plan::DiscoverPlan::parse(
                entry, &loc, base,
            )?),
            None if raw.agents.is_empty() => {
                return Err(loc.at(0..0, "the plan names no [[agents]] and no [discover]"))
            }
            None => None,
        };
        let mut agents: Vec<AgentPlan> = Vec::new();
        for entry in &raw.agents {
            let a = entry.get_ref();
            let name = a.name.get_ref().trim().to_string();
            if name.is_empty() || name.contains(['/', ' ']) {
                return Err(loc.at(a.name.span(), "agent names are one word without `/`"));
            }
            if agents.iter().any(|x| x.name == name) {
                return Err(loc.at(a.name.span(), format!("agent `{name}` is named twice")));
            }
            let url: hyper::Uri = a
                .url
                .get_ref()
                .parse()
                .map_err(|e| loc.at(a.url.span(), format!("invalid url: {e}")))?;
            match (url.scheme_str(), url.host(), url.port_u16()) {
                (Some("http" | "https"), Some(_), Some(_)) => {}
                _ => {
                    return Err(loc.at(
                        a.url.span(),
                        "url must be http(s)://HOST:PORT, e.g. https://203.0.113.10:7070",
                    ))
                }
            }
            let token = a
                .token_file
                .as_ref()
                .map(|tf| read_token(&loc, base, tf))
                .transpose()?;
            let ca_file = match &a.ca_file {
                Some(ca) => {
                    if url.scheme_str() != Some("https") {
                        return Err(loc.at(ca.span(), "ca_file needs an https:// url"));
                    }
                    Some(existing_file(&loc, base, ca)?)
                }
                None => None,
            };
            let client_identity = super::client_identity::parse(
                &loc,
                base,
                ca_file.as_deref(),
                a.client_cert.as_ref(),
                a.client_key.as_ref(),
            )?;
            let mut addresses = BTreeMap::new();
            for (path_name, addr) in &a.addresses {
                let ip = addr.get_ref().parse().map_err(|_| {
                    loc.at(
                        addr.span(),
                        format!("address `{}` is not an IP address", addr.get_ref()),
                    )
                })?;
                addresses.insert(path_name.clone(), ip);
            }
            agents.push(AgentPlan {
                name,
                url,
                token,
                ca_file,
                client_identity,
                labels: a.labels.clone(),
                addresses,
                echo_ports: BTreeMap::new(),
                echo_agents: Vec::new(),
            });
        }

        let all_rounds = match &raw.rounds {
            Some(value) => super::rounds::rounds_value(value, &loc, None)?,
            None => 1,
        };
        let all_over = match &raw.rounds_over {
            Some(value) => Some(super::rounds::over_value(value, &loc, None)?),
            None => None,
        };
        let mut probes = Vec::new();
        let mut rounds = BTreeMap::new();
        let mut rounds_over = BTreeMap::new();
        for (key, table) in &raw.probes {
            let probe: ProbeName = key
                .get_ref()
                .parse()
                .map_err(|e: String| loc.at(key.span(), e))?;
            let (params_table, own) = super::rounds::split_rounds(table, probe, &loc)?;
            let n = super::rounds::rounds_for(probe, own.rounds, all_rounds);
            rounds.insert(probe, n);
            if let Some(over) = super::rounds::over_for(probe, n, own.over, all_over, &loc)? {
                rounds_over.insert(probe, over);
            }
            let params = serde_json::to_value(&params_table)
                .map_err(|e| loc.at(table.span(), e.to_string()))?;
            let checked = if probe.descriptor().pairwise {
                pairwise_stand_in(&params, raw.agents.len())
            } else {
                Ok(params.clone())
            };
            checked
                .and_then(|p| registry::validate(probe, &p).map_err(|e| e.to_string()))
                .map_err(|e| loc.at(table.span(), e))?;
            probes.push((probe, params));
        }
        probes.sort_by_key(|(p, _)| *p);
        if let (Some(value), true) = (&raw.rounds_over, rounds_over.is_empty()) {
            return Err(loc.at(
                value.span(),
                "rounds_over spreads rounds over time and needs rounds = 2 or more on some probe"
                    .to_string(),
            ));
        }
        let soak = raw
            .soak
            .as_ref()
            .map(|s| super::soak_plan::SoakPlan::parse(s, &loc, !probes.is_empty()))
            .transpose()?;

        Ok(Plan {
            path: PathBuf::from(file),
            text: text.to_string(),
            name: raw.name.into_inner(),
            profile,
            out: raw.out.map(|o| base.join(o)),
            lease,
            agents,
            discover,
            probes,
            rounds,
            rounds_over,
            soak,
        })
    }

    /// How many rounds of `probe` the plan asks for (1 when unset).
    pub fn rounds_of(&self, probe: ProbeName) -> u32 {
        self.rounds.get(&probe).copied().unwrap_or(1)
    }

    /// The plan as JSON for run.json.
    pub fn as_json(&self) -> Value {
        let probes: serde_json::Map<String, Value> = self
            .probes
            .iter()
            .map(|(p, v)| {
                (
                    p.to_string(),
                    super::rounds::with_rounds(
                        v,
                        self.rounds_of(*p),
                        self.rounds_over.get(p).copied(),
                    ),
                )
            })
            .collect();
        let mut plan = serde_json::json!({
            "name": self.name,
            "profile": self.profile.name,
            "agents": self.agents.iter().map(|a| serde_json::json!({
                "name": a.name,
                "url": a.url.to_string(),
                "labels": a.labels,
                "addresses": a.addresses,
            })).collect::<Vec<_>>(),
            "probes": probes,
        });
        if let (Some(d), Some(map)) = (&self.discover, plan.as_object_mut()) {
            map.insert("discover".into(), d.as_json());
        }
        if let (Some(s), Some(map)) = (&self.soak, plan.as_object_mut()) {
            map.insert("soak".into(), s.as_json());
        }
        plan
    }
}

/// A `token_file` value: the file's content, trimmed.
pub(super) fn read_token(
    loc: &Locator,
    base: &Path,
    file: &Spanned<String>,
) -> Result<String, PlanError> {
    let p = base.join(file.get_ref());
    std::fs::read_to_string(&p)
        .map(|t| t.trim().to_string())
        .map_err(|e| loc.at(file.span(), format!("{}: {e}", p.display())))
}

/// A file a plan names (`ca_file`), relative to the plan.
pub(super) fn existing_file(
    loc: &Locator,
    base: &Path,
    file: &Spanned<String>,
) -> Result<PathBuf, PlanError> {
    let p = base.join(file.get_ref());
    if p.is_file() {
        Ok(p)
    } else {
        Err(loc.at(file.span(), format!("{}: no such file", p.display())))
    }
}

/// `peers = K` in a pairwise probe's plan section: each node measures K
/// others chosen by rendezvous hashing instead of all of them.
pub const PEERS_KEY: &str = "peers";

/// A network probe's plan section holds `paths` where the probe takes
/// `targets` (the coordinator builds them per source agent); validate the
/// rest against a stand-in target so typos fail before anything runs.
fn pairwise_stand_in(params: &Value, agents: usize) -> Result<Value, String> {
    let mut p = params.as_object().cloned().unwrap_or_default();
    if let Some(peers) = p.remove(PEERS_KEY) {
        match peers.as_u64() {
            Some(k) if k >= 1 && agents >= 2 => {}
            Some(k) if k >= 1 => {
                return Err(format!(
                    "{PEERS_KEY} = {k} on a plan with one agent: there is no peer to measure"
                ))
            }
            _ => {
                return Err(format!(
                "{PEERS_KEY} must be a whole number of at least 1 (each node measures that many \
                     others; leave it out for every pair)"
            ))
            }
        }
    }
    if let Some(paths) = p.remove("paths") {
        let ok = paths
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
        if !ok {
            return Err(
                "paths must be a non-empty list of path names, e.g. [\"native\", \"overlay\"]"
                    .into(),
            );
        }
    }
    if p.contains_key("targets") {
        return Err("targets are built from the agents' addresses: name `paths` instead".into());
    }
    p.insert(
        "targets".into(),
        serde_json::json!([{"node": "stand-in", "path": "native", "address": "127.0.0.1", "port": 1}]),
    );
    Ok(Value::Object(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse(text, "plan.toml", Path::new("/nonexistent"))
    }

    const AGENT: &str = "[[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:7070\"\n";

    #[test]
    fn minimal_plan_parses_in_probe_order() {
        let p = parse(&format!("name = \"t\"\n{AGENT}[probes.inventory]\n")).unwrap();
        assert_eq!(p.name, "t");
        assert_eq!(p.agents[0].url.port_u16(), Some(7070));
        assert_eq!(p.probes[0].0, infraqual_probes::inventory::NAME);
        assert_eq!(p.profile.name, "etcd");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = parse("name = \"t\"\n[[agents]]\nname = = 1\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("plan.toml", 3), "{e}");
        assert!(e.to_string().starts_with("plan.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_probe_points_at_its_key() {
        let e = parse(&format!("name = \"t\"\n{AGENT}[probes.warp]\nx = 1\n")).unwrap_err();
        assert_eq!((e.line, e.column), (5, 9), "{e}");
        assert!(e.message.contains("unknown probe `warp`"));
    }

    #[test]
    fn bad_url_and_duplicate_agents_are_located() {
        let e = parse("name = \"t\"\n[[agents]]\nname = \"a\"\nurl = \"ftp://x\"\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = parse(&format!("name = \"t\"\n{AGENT}{AGENT}")).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("named twice"));
    }

    #[test]
    fn missing_token_file_is_located() {
        let e = parse(
            "name = \"t\"\n[[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"nope.token\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("nope.token"));
    }

    #[test]
    fn network_probe_sections_are_validated_too() {
        let ok = parse(&format!(
            "name = \"t\"\n{AGENT}[probes.rtt]\npaths = [\"native\"]\ncount = 10\n"
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());
        let e = parse(&format!(
            "name = \"t\"\n{AGENT}[probes.rtt]\npaths = [\"native\"]\ncuont = 10\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("cuont"), "{e}");
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn peers_must_be_positive_and_need_a_second_agent() {
        let two = format!("{AGENT}[[agents]]\nname = \"b\"\nurl = \"http://127.0.0.1:7071\"\n");
        let ok = parse(&format!("name = \"t\"\n{two}[probes.rtt]\npeers = 5\n"));
        assert!(ok.is_ok(), "{:?}", ok.err());
        for (agents, peers, says) in [
            (two.as_str(), "0", "at least 1"),
            (two.as_str(), "\"many\"", "whole number"),
            (AGENT, "2", "one agent"),
        ] {
            let e = parse(&format!(
                "name = \"t\"\n{agents}[probes.rtt]\npeers = {peers}\n"
            ))
            .unwrap_err();
            assert!(
                e.message.contains("peers") && e.message.contains(says),
                "{e}"
            );
            assert!(e.line >= 4, "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse(&format!("name = \"t\"\ncolour = 1\n{AGENT}")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
