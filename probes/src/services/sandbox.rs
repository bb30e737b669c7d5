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

/// This process's sandbox namespace prefix, for leak checks in tests.
#[cfg(test)]
pub fn process_prefix() -> String {
    format!("iq-{:x}s", std::process::id())
}
