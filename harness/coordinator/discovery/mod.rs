//! `[discover]`: agents found by DNS instead of listed. Every A record of
//! each headless Service is asked who it is (`/v1/health`); agents that name
//! the same node are paired into one node of the run, each giving its
//! service's path an address and echo port. The node's jobs run on its
//! hostNetwork agent (pod IP = host IP: it sees the host's disk, rules and
//! native network), else on the agent of the first service listed.
//! Before every phase the names are resolved again: agents that appeared or
//! vanished are reported in the bundle.

pub mod dns;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::api::Health;
use crate::coordinator::client::AgentClient;
use crate::coordinator::plan::{AgentPlan, PlanError};
use dns::DnsError;
use plan::DiscoverPlan;

/// One A record of one service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub path: String,
    pub address: Ipv4Addr,
}

/// What discovery found: the nodes to run, and addresses that could not
/// join one (reported in the bundle under the address).
pub struct Found {
    pub agents: Vec<AgentPlan>,
    pub problems: Vec<(String, String)>,
    pub watch: Watch,
}

/// Every service's A records, in plan order. Failures point at the
/// service's `name` in the plan.
fn resolve_all(d: &DiscoverPlan) -> Result<Vec<Vec<Ipv4Addr>>, PlanError> {
    let mut all = Vec::new();
    for s in &d.services {
        let addrs = d.resolver.lookup_a(&s.name).map_err(|e| match e {
            DnsError::NoSuchName { .. } => s.at.error(format!("name: {e}")),
            other => s.at.error(format!("name `{}`: {other}", s.name)),
        })?;
        if addrs.is_empty() {
            return Err(s.at.error(format!(
                "name `{}` resolves to no address (no ready agent behind the headless Service?)",
                s.name
            )));
        }
        all.push(addrs);
    }
    Ok(all)
}

fn probe_agent(d: &DiscoverPlan, address: Ipv4Addr, port: u16) -> anyhow::Result<AgentClient> {
    let url = format!("{}://{address}:{port}", d.scheme());
    let agent = AgentPlan {
        name: format!("{address}:{port}"),
        url: url.parse()?,
        token: d.token.clone(),
        ca_file: d.ca_file.clone(),
        client_identity: None,
        labels: BTreeMap::new(),
        addresses: BTreeMap::new(),
        echo_ports: BTreeMap::new(),
        echo_agents: Vec::new(),
    };
    AgentClient::new(&agent)
}

/// Resolves, asks every address who it is, and pairs agents by node.
pub async fn discover(d: &DiscoverPlan) -> Result<Found, PlanError> {
    let plan = d.clone();
    let resolved = tokio::task::spawn_blocking(move || resolve_all(&plan))
        .await
        .map_err(|e| d.resolver_at.error(format!("resolving: {e}")))??;

    let mut asks = tokio::task::JoinSet::new();
    for (index, (service, addrs)) in d.services.iter().zip(&resolved).enumerate() {
        for &address in addrs {
            let client = probe_agent(d, address, service.port);
            asks.spawn(async move {
                let health = match client {
                    Ok(c) => c
                        .get::<Health>("/v1/health")
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{e:#}")),
                };
                (index, address, health)
            });
        }
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|(index, address, _)| (*index, *address));
    let (agents, problems) = pair(d, answers);
    let watch = Watch::new(d, &agents);
    Ok(Found {
        agents,
        problems,
        watch,
    })
}

/// Groups answers by the node they name. Pure: the rules are unit-tested.
fn pair(
    d: &DiscoverPlan,
    answers: Vec<(usize, Ipv4Addr, Result<Health, String>)>,
) -> (Vec<AgentPlan>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut nodes: BTreeMap<String, Vec<(usize, Ipv4Addr, Health)>> = BTreeMap::new();
    for (index, address, health) in answers {
        let service = &d.services[index];
        let at = format!("{address}:{}", service.port);
        match health {
            Err(e) => problems.push((
                at,
                format!(
                    "found in `{}` (path {}) but /v1/health failed: {e}",
                    service.name, service.path
                ),
            )),
            Ok(h) if h.node.trim().is_empty() || h.node.contains(['/', ' ']) => problems.push((
                at,
                format!(
                    "found in `{}` but reports node name `{}`, not one word",
                    service.name, h.node
                ),
            )),
            Ok(h) => {
                let members = nodes.entry(h.node.clone()).or_default();
                if members.iter().any(|(i, _, _)| *i == index) {
                    problems.push((
                        at,
                        format!(
                            "a second agent of node {} in `{}` (path {}): only the first address is measured",
                            h.node, service.name, service.path
                        ),
                    ));
                } else {
                    members.push((index, address, h));
                }
            }
        }
    }
    let mut agents = Vec::new();
    for (node, members) in nodes {
        let runner = members
            .iter()
            .find(|(_, _, h)| h.pod_ip.is_some() && h.pod_ip == h.host_ip)
            .unwrap_or(&members[0]);
        let (runner_index, runner_address, _) = runner;
        let url = format!(
            "{}://{runner_address}:{}",
            d.scheme(),
            d.services[*runner_index].port
        );
        let Ok(url) = url.parse() else {
            problems.push((node.clone(), format!("no usable url {url}")));
            continue;
        };
        let mut labels = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        let mut echo_ports = BTreeMap::new();
        let mut echo_agents = Vec::new();
        for (index, address, health) in &members {
            let path = &d.services[*index].path;
            labels.extend(health.labels.clone());
            addresses.insert(path.clone(), std::net::IpAddr::V4(*address));
            if let Some(port) = health.echo_port {
                echo_ports.insert(path.clone(), port);
                let api = format!("{}://{address}:{}", d.scheme(), d.services[*index].port);
                if index != runner_index {
                    if let Ok(api) = api.parse() {
                        echo_agents.push(api);
                    }
                }
            }
        }
        agents.push(AgentPlan {
            name: node,
            url,
            token: d.token.clone(),
            ca_file: d.ca_file.clone(),
            client_identity: None,
            labels,
            addresses,
            echo_ports,
            echo_agents,
        });
    }
    (agents, problems)
}

/// A change between discovery and a later look at DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Appeared {
        member: Member,
        service: String,
    },
    Vanished {
        node: String,
        member: Member,
        service: String,
    },
}

/// The members discovery started from, and which were already reported.
pub struct Watch {
    known: BTreeMap<Member, String>,
    reported: BTreeSet<Member>,
}

impl Watch {
    fn new(d: &DiscoverPlan, agents: &[AgentPlan]) -> Watch {
        let mut known = BTreeMap::new();
        for agent in agents {
            for (path, ip) in &agent.addresses {
                if let (std::net::IpAddr::V4(address), true) =
                    (ip, d.services.iter().any(|s| &s.path == path))
                {
                    known.insert(
                        Member {
                            path: path.clone(),
                            address: *address,
                        },
                        agent.name.clone(),
                    );
                }
            }
        }
        Watch {
            known,
            reported: BTreeSet::new(),
        }
    }

    /// Resolves every service again; a name gone from DNS counts as empty,
    /// a DNS server that does not answer skips this look (logged).
    pub async fn look(&mut self, d: &DiscoverPlan) -> Vec<Change> {
        let mut now = Vec::new();
        for s in &d.services {
            let resolver = d.resolver.clone();
            let name = s.name.clone();
            let addrs = tokio::task::spawn_blocking(move || resolver.lookup_a(&name)).await;
            match addrs {
                Ok(Ok(addrs)) => now.push(addrs),
                Ok(Err(DnsError::NoSuchName { .. })) => now.push(Vec::new()),
                Ok(Err(e)) => {
                    tracing::warn!("re-resolving `{}`: {e}", s.name);
                    return Vec::new();
                }
                Err(e) => {
                    tracing::warn!("re-resolving `{}`: {e}", s.name);
                    return Vec::new();
                }
            }
        }
        self.diff(d, &now)
    }

    /// Changes not reported before, given every service's current records.
    fn diff(&mut self, d: &DiscoverPlan, now: &[Vec<Ipv4Addr>]) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut present = BTreeSet::new();
        for (s, addrs) in d.services.iter().zip(now) {
            for &address in addrs {
                let member = Member {
                    path: s.path.clone(),
                    address,
                };
                present.insert(member.clone());
                if !self.known.contains_key(&member) && self.reported.insert(member.clone()) {
                    changes.push(Change::Appeared {
                        member,
                        service: s.name.clone(),
                    });
                }
            }
        }
        for (member, node) in &self.known {
            if !present.contains(member) && self.reported.insert(member.clone()) {
                let service = d
                    .services
                    .iter()
                    .find(|s| s.path == member.path)
                    .map_or_else(String::new, |s| s.name.clone());
                changes.push(Change::Vanished {
                    node: node.clone(),
                    member: member.clone(),
                    service,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests;
