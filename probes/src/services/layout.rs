//! The synthetic cluster both generators describe: S ClusterIP services,
//! each with one TCP port, all sharing the same E endpoints (as kube-proxy's
//! number_generated_rules_test.go generates them), and the sandbox's address
//! plan. Everything sits in RFC 2544 space and only inside our namespaces.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Service VIPs: 198.18.128.0/17 (the address plan in docs/safety.md).
pub const SERVICE_CIDR: &str = "198.18.128.0/17";
const VIP_BASE: u32 = u32::from_be_bytes([198, 18, 128, 0]);
/// The veth link between node and endpoints; the lab uses 198.18.0.0/24 and
/// 198.18.1.0/24, so this /24 never meets a lab address.
pub const LINK_PREFIX_LEN: u8 = 24;
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 1);
pub const BACKEND_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 2);
const FIRST_ENDPOINT_HOST: u8 = 10;
/// The "pod network" kube-proxy's local-traffic detector matches
/// (`! -s CLUSTER_CIDR -j KUBE-MARK-MASQ`): the node's own connections come
/// from outside it and are masqueraded, as on a real node.
pub const CLUSTER_CIDR: &str = "198.19.0.0/16";

pub const SERVICE_PORT: u16 = 80;
pub const ENDPOINT_PORT: u16 = 8080;
const NAMESPACE: &str = "iq";
const PORT_NAME: &str = "p80";
pub const PROTOCOL: &str = "tcp";

/// kube-proxy's masquerade bit 14.
pub const MASQUERADE_MARK: &str = "0x4000";

/// The VIP range holds 32,767 hosts; one more than this is the update probe.
pub const MAX_SERVICES: usize = 30_000;
/// Endpoints are addresses 198.18.64.10 and up, each answering with its index.
pub const MAX_ENDPOINTS: usize = 16;

/// kube-proxy's "large cluster mode" (pkg/proxy/iptables): above this many
/// endpoints in total, per-endpoint comments are dropped to shrink the input.
pub const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// The ClusterIP of service `index` (0-based; .0 of the range is skipped).
pub fn vip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(VIP_BASE + 1 + index as u32)
}

/// The address and port of endpoint `index`.
pub fn endpoint(index: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, 64, FIRST_ENDPOINT_HOST + index as u8),
        ENDPOINT_PORT,
    )
}

pub fn endpoints(count: usize) -> Vec<SocketAddrV4> {
    (0..count).map(endpoint).collect()
}

/// The index of `addr` among the endpoints, if it is one.
pub fn endpoint_index(addr: Ipv4Addr) -> Option<usize> {
    let host = addr.octets()[3];
    (addr.octets()[..3] == [198, 18, 64] && host >= FIRST_ENDPOINT_HOST)
        .then(|| usize::from(host - FIRST_ENDPOINT_HOST))
        .filter(|i| *i < MAX_ENDPOINTS)
}

/// What kube-proxy calls `ServicePortName.String()`: `namespace/name:port`.
pub fn service_port_name(index: usize) -> String {
    format!("{NAMESPACE}/svc{index}:{PORT_NAME}")
}

/// nftables' readable chain base: `namespace/name/protocol/port`.
pub fn nft_service_base(index: usize) -> String {
    format!("{NAMESPACE}/svc{index}/{PROTOCOL}/{PORT_NAME}")
}

/// The service at the front, middle and end of a list of `count`.
pub fn positions(count: usize) -> [(Position, usize); 3] {
    let last = count.saturating_sub(1);
    [
        (Position::Front, 0),
        (Position::Middle, count / 2),
        (Position::End, last),
    ]
}

/// Where a service sits in the list kube-proxy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Front,
    Middle,
    End,
}

impl Position {
    pub fn as_str(self) -> &'static str {
        match self {
            Position::Front => "front",
            Position::Middle => "middle",
            Position::End => "end",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_stay_inside_the_service_range() {
        assert_eq!(vip(0), Ipv4Addr::new(198, 18, 128, 1));
        assert_eq!(vip(MAX_SERVICES), Ipv4Addr::new(198, 18, 245, 49));
        assert!(u32::from(vip(MAX_SERVICES)) < VIP_BASE + (1 << 15) - 1);
    }

    #[test]
    fn endpoints_round_trip_and_stay_off_the_link_hosts() {
        for i in 0..MAX_ENDPOINTS {
            let ep = endpoint(i);
            assert_eq!(endpoint_index(*ep.ip()), Some(i));
            assert_ne!(*ep.ip(), CLIENT_IP);
            assert_ne!(*ep.ip(), BACKEND_IP);
        }
        assert_eq!(endpoint_index(BACKEND_IP), None);
    }

    #[test]
    fn positions_of_one_and_many() {
        assert_eq!(positions(1).map(|p| p.1), [0, 0, 0]);
        assert_eq!(positions(10_000).map(|p| p.1), [0, 5000, 9999]);
    }
}
