//! The private network the probe measures in: a `node` namespace that holds
//! the service rules and opens the connections, and an `ep` namespace whose
//! addresses are the endpoints, joined by one veth pair. The veth is created
//! inside the node namespace with its peer placed straight into the endpoint
//! namespace, so no interface, address, route or rule ever exists in the
//! host namespace. Everything is removed by Drop, on every exit path.

use std::sync::atomic::{AtomicU32, Ordering};

use super::layout::{self, BACKEND_IP, CLIENT_IP, LINK_PREFIX_LEN, SERVICE_CIDR};
use super::servers::EndpointServers;
use crate::error::ProbeError;
use crate::system::netns::{self, ip, Netns};

static SANDBOX_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The sandbox's owner id, `<pid>s<counter>` (hex pid): unique among
/// concurrent tests in one process and among processes.
fn unique_id() -> String {
    let n = SANDBOX_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}s{n}", std::process::id())
}

/// Node and endpoint namespaces, the veth between them, and the endpoint
/// servers. Field order is drop order: servers stop before the namespaces go.
pub struct Sandbox {
    _servers: EndpointServers,
    pub node: Netns,
    _endpoints_ns: Netns,
}

impl Sandbox {
    pub fn create(endpoints: usize) -> Result<Self, ProbeError> {
        let id = unique_id();
        let node = Netns::create(&netns::name(&id, "node"))?;
        let endpoints_ns = Netns::create(&netns::name(&id, "ep"))?;
        let (n, e) = (node.name(), endpoints_ns.name());
        let link = |ip_addr: std::net::Ipv4Addr| format!("{ip_addr}/{LINK_PREFIX_LEN}");
        ip(
            n,
            &[
                "link", "add", "iq-node", "type", "veth", "peer", "name", "iq-ep", "netns", e,
            ],
        )?;
        ip(n, &["addr", "add", &link(CLIENT_IP), "dev", "iq-node"])?;
        ip(e, &["addr", "add", &link(BACKEND_IP), "dev", "iq-ep"])?;
        for ep in layout::endpoints(endpoints) {
            ip(e, &["addr", "add", &link(*ep.ip()), "dev", "iq-ep"])?;
        }
        ip(n, &["link", "set", "iq-node", "up"])?;
        ip(e, &["link", "set", "iq-ep", "up"])?;
        // Packets to a VIP leave towards the endpoint side; DNAT in OUTPUT
        // rewrites them to an endpoint on the link before they go.
        let via = BACKEND_IP.to_string();
        ip(n, &["route", "add", SERVICE_CIDR, "via", &via])?;
        let servers = EndpointServers::start(&endpoints_ns, &layout::endpoints(endpoints))?;
        Ok(Sandbox {
            _servers: servers,
            node,
            _endpoints_ns: endpoints_ns,
        })
    }
}

/// The pid that owns a sandbox namespace `iq-<hex pid>s<n>-<node|ep>`;
/// None for any other name (the lab's and everyone else's).
fn sandbox_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("iq-")?;
    let (id, role) = rest.split_once('-')?;
    if role != "node" && role != "ep" {
        return None;
    }
    let (pid, n) = id.split_once('s')?;
    n.parse::<u32>().ok()?;
    u32::from_str_radix(pid, 16).ok()
}

/// Deletes the sandbox namespaces (and the rules in them) whose owner
/// process is gone: what a crash or `kill -9` of an earlier run left.
/// Returns the names removed, each also logged.
pub fn sweep_orphans() -> Vec<String> {
    let mut removed = Vec::new();
    for name in netns::names_with_prefix("iq-") {
        let Some(pid) = sandbox_owner(&name) else {
            continue;
        };
        if pid == std::process::id() || crate::system::process_alive(pid) {
            continue;
        }
        match netns::delete(&name) {
            Ok(_) => {
                tracing::warn!(
                    "removed network namespace {name} left by services process {pid}, which is gone"
                );
                removed.push(name);
            }
            Err(e) => tracing::warn!("could not remove leftover namespace {name}: {e}"),
        }
    }
    removed
}

/// This process's sandbox namespace prefix, for leak checks in tests.
#[cfg(test)]
pub fn process_prefix() -> String {
    format!("iq-{:x}s", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sandbox_names_have_an_owner() {
        assert_eq!(sandbox_owner("iq-1a2bs3-node"), Some(0x1a2b));
        assert_eq!(sandbox_owner("iq-1a2bs0-ep"), Some(0x1a2b));
        assert_eq!(sandbox_owner("iq-1a2bs3-n1"), None, "a lab node");
        assert_eq!(sandbox_owner("iq-lab1-node"), None);
        assert_eq!(sandbox_owner("other-1s1-node"), None);
    }
}
