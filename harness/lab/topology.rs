//! The lab's network (address plan: docs/safety.md), built with iproute2
//! inside the lab's own namespaces only:
//!
//! - per region a switch namespace `iq-<id>-s<k>` with bridge `br0`: the
//!   underlay 198.18.0.0/24, MTU 1500;
//! - per node a node namespace `iq-<id>-n<i>`: `ul0` on the underlay
//!   (198.18.0.i), a flannel-style VXLAN `flannel.1` (VNI 1, UDP 8472, MTU
//!   1450, 198.19.i.0/32, static neighbour and FDB entries per peer, as
//!   flannel programs them) and `veth0` to its pod;
//! - per node a pod namespace `iq-<id>-p<i>` (where the agent measures):
//!   `eth0` with the overlay address 198.19.i.1 and the native address
//!   198.19.i.129. Peers' 198.19.j.0/25 is routed through the VXLAN
//!   (overlay); 198.19.j.128/25 straight over the underlay to node j
//!   (flannel's host-gw: the native path, same pods, no encapsulation);
//! - with regions, a WAN hub `iq-<id>-wan`: each region's switch routes
//!   (proxy ARP on br0) other regions' nodes into a TUN device `wan0` whose
//!   packets a delay line holds for the region's one-way delay before
//!   writing them to the hub's TUN `r<k>`, and back. Inter-region links use
//!   198.18.1.0/24.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Result};
use infraqual_probes::system::netns;

pub const VXLAN_DEV: &str = "flannel.1";
pub const VXLAN_PORT: u16 = 8472;
pub const OVERLAY_MTU: u32 = 1450;
pub const UNDERLAY_MTU: u32 = 1500;
pub const MAX_NODES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pods believe 1500 while the overlay carries 1450, and the node drops
    /// the ICMP fragmentation-needed it would send them.
    MtuBlackhole,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::MtuBlackhole => "mtu-blackhole",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub name: String,
    pub one_way_delay: Duration,
    /// The region's WAN link rate in bits per second (both directions);
    /// None: as fast as the delay line forwards.
    pub rate_bps: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct NodeLayout {
    /// 1-based: the node's underlay host number and pod network.
    pub index: u8,
    pub name: String,
    pub region: usize,
    pub node_ns: String,
    pub pod_ns: String,
}

impl NodeLayout {
    pub fn underlay(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, self.index)
    }
    pub fn overlay(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.index, 1)
    }
    pub fn native(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.index, 129)
    }
    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.index, 254)
    }
    fn vtep(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.index, 0)
    }
    fn vtep_mac(&self) -> String {
        format!("02:1a:00:00:00:{:02x}", self.index)
    }
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub id: String,
    pub regions: Vec<Region>,
    pub switch_ns: Vec<String>,
    pub hub_ns: Option<String>,
    pub nodes: Vec<NodeLayout>,
    pub fault: Option<Fault>,
}

impl Layout {
    /// Nodes are spread over regions in contiguous blocks (the first
    /// regions get one more when the count does not divide).
    pub fn new(id: &str, nodes: usize, regions: &[Region], fault: Option<Fault>) -> Result<Layout> {
        if !(2..=MAX_NODES).contains(&nodes) {
            bail!("--nodes {nodes}: give 2..={MAX_NODES}");
        }
        if regions.len() > nodes {
            bail!(
                "{} regions need at least as many nodes (--nodes {nodes})",
                regions.len()
            );
        }
        let regions: Vec<Region> = if regions.is_empty() {
            vec![Region {
                name: "lab".into(),
                one_way_delay: Duration::ZERO,
                rate_bps: None,
            }]
        } else {
            regions.to_vec()
        };
        let ns = |role: String| netns::name(id, &role);
        let switch_ns = (1..=regions.len()).map(|k| ns(format!("s{k}"))).collect();
        let hub_ns = (regions.len() > 1).then(|| ns("wan".into()));
        let mut layout_nodes = Vec::new();
        let (per, extra) = (nodes / regions.len(), nodes % regions.len());
        let mut index = 0u8;
        for (k, region) in regions.iter().enumerate() {
            let here = per + usize::from(k < extra);
            for j in 1..=here {
                index += 1;
                let name = if regions.len() > 1 {
                    format!("{}-{j}", region.name)
                } else {
                    format!("node-{index}")
                };
                layout_nodes.push(NodeLayout {
                    index,
                    name,
                    region: k,
                    node_ns: ns(format!("n{index}")),
                    pod_ns: ns(format!("p{index}")),
                });
            }
        }
        Ok(Layout {
            id: id.to_string(),
            regions,
            switch_ns,
            hub_ns,
            nodes: layout_nodes,
            fault,
        })
    }

    /// Every namespace, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = self.switch_ns.clone();
        all.extend(self.hub_ns.clone());
        for n in &self.nodes {
            all.push(n.node_ns.clone());
            all.push(n.pod_ns.clone());
        }
        all
    }

    pub fn pod_mtu(&self) -> u32 {
        match self.fault {
            Some(Fault::MtuBlackhole) => UNDERLAY_MTU,
            None => OVERLAY_MTU,
        }
    }

    /// The delay lines to start: (region index, region switch ns, hub ns).
    pub fn delay_lines(&self) -> Vec<(usize, String, String)> {
        match &self.hub_ns {
            Some(hub) => (0..self.regions.len())
                .map(|k| (k, self.switch_ns[k].clone(), hub.clone()))
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The hub's TUN device for region k (0-based).
pub fn hub_dev(k: usize) -> String {
    format!("r{}", k + 1)
}
pub const REGION_WAN_DEV: &str = "wan0";

/// Builds everything but the delay-line processes (the TUN devices exist,
/// persistent, so routes can be set before the forwarders attach).
pub fn build(l: &Layout) -> Result<()> {
    for ns in l.namespaces() {
        netns::add(&ns)?;
    }
    for sw in &l.switch_ns {
        netns::ip_batch(
            sw,
            &[
                "link add br0 type bridge stp_state 0 forward_delay 0".into(),
                "link set br0 up".into(),
            ],
        )?;
    }
    let forwarding = |extra: &[&str]| {
        let mut s = vec![
            "net.ipv4.ip_forward=1".to_string(),
            "net.ipv4.conf.all.rp_filter=0".into(),
            "net.ipv4.conf.default.rp_filter=0".into(),
        ];
        s.extend(extra.iter().map(|e| e.to_string()));
        s
    };
    for n in &l.nodes {
        build_node(l, n)?;
        sysctl(&n.node_ns, &forwarding(&[]))?;
    }
    for n in &l.nodes {
        build_peers(l, n)?;
    }
    if let Some(hub) = &l.hub_ns {
        build_regions(l, hub)?;
        sysctl(hub, &forwarding(&[]))?;
        for sw in &l.switch_ns {
            sysctl(sw, &forwarding(&["net.ipv4.conf.br0.proxy_arp=1"]))?;
        }
    }
    if l.fault == Some(Fault::MtuBlackhole) {
        for n in &l.nodes {
            // Locally generated ICMP (the node's "fragmentation needed" to
            // its pod) passes the output hook: drop it there, in the node.
            nft(
                &n.node_ns,
                "table ip iq_lab_fault {\n  chain output {\n    type filter hook output priority 0; policy accept;\n    icmp type destination-unreachable icmp code frag-needed drop\n  }\n}\n",
            )?;
        }
    }
    Ok(())
}

/// sysctls inside the namespace (`sysctl -qw k=v ...`; /proc/sys/net shows
/// the namespace of the process that opens it).
fn sysctl(ns: &str, settings: &[String]) -> Result<()> {
    let mut args = vec!["-qw"];
    args.extend(settings.iter().map(String::as_str));
    netns::run_tool_in(ns, "sysctl", &args, None)?;
    Ok(())
}

/// An nft ruleset loaded inside the namespace.
fn nft(ns: &str, ruleset: &str) -> Result<()> {
    netns::run_tool_in(ns, "nft", &["-f", "-"], Some(ruleset.as_bytes()))?;
    Ok(())
}

fn build_node(l: &Layout, n: &NodeLayout) -> Result<()> {
    let sw = &l.switch_ns[n.region];
    let port = format!("n{}", n.index);
    netns::ip(
        &n.node_ns,
        &[
            "link", "add", "ul0", "mtu", "1500", "type", "veth", "peer", "name", &port, "netns", sw,
        ],
    )?;
    netns::ip_batch(sw, &[format!("link set {port} master br0 up")])?;
    let pod_mtu = l.pod_mtu();
    netns::ip(
        &n.node_ns,
        &[
            "link",
            "add",
            "veth0",
            "mtu",
            &pod_mtu.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "mtu",
            &pod_mtu.to_string(),
            "netns",
            &n.pod_ns,
        ],
    )?;
    netns::ip_batch(
        &n.node_ns,
        &[
            format!("addr add {}/24 dev ul0", n.underlay()),
            "link set ul0 up".into(),
            format!(
                "link add {VXLAN_DEV} type vxlan id 1 local {} dev ul0 dstport {VXLAN_PORT} nolearning",
                n.underlay()
            ),
            format!(
                "link set {VXLAN_DEV} address {} mtu {OVERLAY_MTU} up",
                n.vtep_mac()
            ),
            format!("addr add {}/32 dev {VXLAN_DEV}", n.vtep()),
            format!("addr add {}/24 dev veth0", n.gateway()),
            "link set veth0 up".into(),
        ],
    )?;
    netns::ip_batch(
        &n.pod_ns,
        &[
            format!("addr add {}/24 dev eth0", n.overlay()),
            format!("addr add {}/24 dev eth0", n.native()),
            "link set eth0 up".into(),
            format!("route add default via {}", n.gateway()),
        ],
    )?;
    Ok(())
}

/// Per peer: flannel's neighbour + FDB + onlink route for the overlay, a
/// host-gw route for the native path, and the pod's source choice.
fn build_peers(l: &Layout, n: &NodeLayout) -> Result<()> {
    let mut node_cmds = Vec::new();
    let mut fdb = Vec::new();
    let mut pod_cmds = Vec::new();
    for p in l.nodes.iter().filter(|p| p.index != n.index) {
        let i = p.index;
        node_cmds.push(format!(
            "neigh add {} lladdr {} dev {VXLAN_DEV} nud permanent",
            p.vtep(),
            p.vtep_mac()
        ));
        node_cmds.push(format!(
            "route add 198.19.{i}.0/25 via {} dev {VXLAN_DEV} onlink",
            p.vtep()
        ));
        node_cmds.push(format!(
            "route add 198.19.{i}.128/25 via {} dev ul0",
            p.underlay()
        ));
        fdb.push(format!(
            "fdb append {} dev {VXLAN_DEV} dst {}",
            p.vtep_mac(),
            p.underlay()
        ));
        pod_cmds.push(format!(
            "route add 198.19.{i}.128/25 via {} src {}",
            n.gateway(),
            n.native()
        ));
    }
    netns::ip_batch(&n.node_ns, &node_cmds)?;
    netns::bridge_batch(&n.node_ns, &fdb)?;
    netns::ip_batch(&n.pod_ns, &pod_cmds)?;
    Ok(())
}

fn build_regions(l: &Layout, hub: &str) -> Result<()> {
    let mut hub_cmds = Vec::new();
    for (k, sw) in l.switch_ns.iter().enumerate() {
        let k1 = k as u8 + 1;
        let dev = hub_dev(k);
        let mut sw_cmds = vec![
            format!("tuntap add dev {REGION_WAN_DEV} mode tun"),
            format!("addr add 198.18.1.{}/32 dev {REGION_WAN_DEV}", 2 * k1 - 1),
            format!("link set {REGION_WAN_DEV} up"),
            // An address for the region router's own ARP requests on br0.
            format!("addr add 198.18.1.{}/32 dev br0", 100 + k1),
            format!("route add 198.18.0.0/24 dev br0 src 198.18.1.{}", 100 + k1),
        ];
        hub_cmds.push(format!("tuntap add dev {dev} mode tun"));
        hub_cmds.push(format!("addr add 198.18.1.{}/32 dev {dev}", 2 * k1));
        hub_cmds.push(format!("link set {dev} up"));
        for n in &l.nodes {
            // The underlay address (VXLAN, host-gw next hops) and the pod
            // network (its native half arrives unencapsulated).
            let pods = format!("198.19.{}.0/24", n.index);
            if n.region == k {
                hub_cmds.push(format!("route add {}/32 dev {dev}", n.underlay()));
                hub_cmds.push(format!("route add {pods} dev {dev}"));
                sw_cmds.push(format!("route add {pods} via {} dev br0", n.underlay()));
            } else {
                sw_cmds.push(format!(
                    "route add {}/32 dev {REGION_WAN_DEV}",
                    n.underlay()
                ));
                sw_cmds.push(format!("route add {pods} dev {REGION_WAN_DEV}"));
            }
        }
        netns::ip_batch(sw, &sw_cmds)?;
    }
    netns::ip_batch(hub, &hub_cmds)?;
    Ok(())
}
