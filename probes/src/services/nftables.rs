//! kube-proxy's nftables layout as `nft -f` input (pure text). Mirrors
//! pkg/proxy/nftables/proxier.go (setupNFTables and syncProxyRules) for
//! ClusterIP services with ready remote endpoints: `table ip kube-proxy`,
//! its base chains, sets and maps, and the one dispatch rule
//! `ip daddr . meta l4proto . th dport vmap @service-ips` — a hash lookup,
//! so the cost per packet does not grow with the number of services.
//! Per service a `service-<hash>-ns/name/tcp/port` chain (masquerade check,
//! then `numgen random mod E vmap { ... }`), per endpoint an
//! `endpoint-<hash>-...` chain (hairpin mark, DNAT), and a `service-ips`
//! element. Chains are added and flushed as knftables' ensureChain does.

use std::fmt::Write;
use std::net::SocketAddrV4;

use super::hash::chain_hash;
use super::layout::{
    self, nft_service_base, vip, CLIENT_IP, CLUSTER_CIDR, MASQUERADE_MARK, PROTOCOL, SERVICE_CIDR,
    SERVICE_PORT,
};

pub const TABLE: &str = "kube-proxy";

/// One `nft -f` input and the rules it adds.
#[derive(Clone, Debug)]
pub struct NftInput {
    pub text: String,
    pub rules: usize,
}

/// Rules in the base layout (setupNFTables), independent of services.
pub const BASE_RULES: usize = 23;

/// Rules for S services with E endpoints: the base layout, per service a
/// masquerade rule and the endpoint vmap, per endpoint chain two rules.
pub fn expected_rules(services: usize, endpoints: usize) -> usize {
    BASE_RULES + services * (2 + 2 * endpoints)
}

/// hashAndTruncate: `<base32(sha256(name))[:8]>-<name>`.
fn hashed(name: &str) -> String {
    format!("{}-{name}", chain_hash(name, 8))
}

pub fn service_chain(index: usize) -> String {
    format!("service-{}", hashed(&nft_service_base(index)))
}

pub fn endpoint_chain(index: usize, endpoint: &SocketAddrV4) -> String {
    format!(
        "endpoint-{}",
        hashed(&format!(
            "{}__{}/{}",
            nft_service_base(index),
            endpoint.ip(),
            endpoint.port()
        ))
    )
}

/// The base table, as kube-proxy's first full sync creates it.
fn write_base(out: &mut String) -> usize {
    let t = format!("ip {TABLE}");
    let lines = [
        format!("add table {t} {{ comment \"rules for kube-proxy\" ; }}"),
        format!("add set {t} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"),
        format!("add set {t} nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"),
        format!("add map {t} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"),
        format!("add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"),
        format!("add map {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"),
        format!("add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"),
        format!("add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}"),
        format!("add chain {t} cluster-ips-check"),
        format!("add chain {t} filter-prerouting-pre-dnat {{ type filter hook prerouting priority -110 ; }}"),
        format!("add chain {t} filter-output-pre-dnat {{ type filter hook output priority -110 ; }}"),
        format!("add chain {t} filter-forward {{ type filter hook forward priority 0 ; }}"),
        format!("add chain {t} filter-input {{ type filter hook input priority 0 ; }}"),
        format!("add chain {t} filter-output {{ type filter hook output priority 0 ; }}"),
        format!("add chain {t} firewall-check"),
        format!("add chain {t} mark-for-masquerade"),
        format!("add chain {t} masquerading"),
        format!("add chain {t} nat-output {{ type nat hook output priority -100 ; }}"),
        format!("add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}"),
        format!("add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}"),
        format!("add chain {t} nodeport-endpoints-check"),
        format!("add chain {t} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"),
        format!("add chain {t} services"),
        format!("add chain {t} service-endpoints-check"),
    ];
    let rules = [
        format!("add rule {t} cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\""),
        format!("add rule {t} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop comment \"Drop traffic to unallocated ClusterIPs\""),
        format!("add rule {t} filter-prerouting-pre-dnat ct state new jump firewall-check"),
        format!("add rule {t} filter-forward ct state new jump service-endpoints-check"),
        format!("add rule {t} filter-forward ct state new jump cluster-ips-check"),
        format!("add rule {t} filter-input ct state new jump nodeport-endpoints-check"),
        format!("add rule {t} filter-input ct state new jump service-endpoints-check"),
        format!("add rule {t} filter-output ct state new jump service-endpoints-check"),
        format!("add rule {t} filter-output-pre-dnat ct state new jump firewall-check"),
        format!("add rule {t} filter-output ct state new jump cluster-ips-check"),
        format!("add rule {t} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips"),
        format!("add rule {t} mark-for-masquerade mark set mark or {MASQUERADE_MARK}"),
        format!("add rule {t} masquerading mark and {MASQUERADE_MARK} == 0 return"),
        format!("add rule {t} masquerading mark set mark xor {MASQUERADE_MARK}"),
        format!("add rule {t} masquerading masquerade fully-random"),
        format!("add rule {t} nat-output jump services"),
        format!("add rule {t} nat-postrouting jump masquerading"),
        format!("add rule {t} nat-prerouting jump services"),
        format!("add rule {t} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"),
        format!("add rule {t} reject-chain reject"),
        format!("add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips"),
        format!("add rule {t} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"),
        format!("add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
    ];
    for line in lines.iter().chain(rules.iter()) {
        out.push_str(line);
        out.push('\n');
    }
    let _ = writeln!(out, "add element {t} nodeport-ips {{ {CLIENT_IP} }}");
    rules.len()
}

/// One service's chains, rules and map elements.
fn write_service(out: &mut String, index: usize, endpoints: &[SocketAddrV4]) -> usize {
    let t = format!("ip {TABLE}");
    let svc = service_chain(index);
    let ip = vip(index);
    let mut rules = 0;
    // Endpoint chains first, as kube-proxy ensures them before the service
    // chain whose vmap jumps to them.
    for ep in endpoints {
        let chain = endpoint_chain(index, ep);
        let _ = writeln!(out, "add chain {t} {chain}\nflush chain {t} {chain}");
    }
    let _ = writeln!(out, "add chain {t} {svc}\nflush chain {t} {svc}");
    let _ = writeln!(
        out,
        "add rule {t} {svc} ip daddr {ip} ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade"
    );
    let _ = write!(
        out,
        "add rule {t} {svc} numgen random mod {} vmap {{ ",
        endpoints.len()
    );
    for (n, ep) in endpoints.iter().enumerate() {
        let sep = if n == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{n} : goto {}", endpoint_chain(index, ep));
    }
    out.push_str(" }\n");
    rules += 2;
    for ep in endpoints {
        let chain = endpoint_chain(index, ep);
        let _ = writeln!(
            out,
            "add rule {t} {chain} ip saddr {} jump mark-for-masquerade",
            ep.ip()
        );
        let _ = writeln!(
            out,
            "add rule {t} {chain} meta l4proto {PROTOCOL} dnat to {ep}"
        );
        rules += 2;
    }
    let _ = writeln!(out, "add element {t} cluster-ips {{ {ip} }}");
    let _ = writeln!(
        out,
        "add element {t} service-ips {{ {ip} . {PROTOCOL} . {SERVICE_PORT} : goto {svc} }}"
    );
    rules
}

/// Everything for `services` services in one transaction.
pub fn full_sync(services: usize, endpoints: &[SocketAddrV4]) -> NftInput {
    let mut text = String::with_capacity(6000 + services * (400 + endpoints.len() * 350));
    let mut rules = write_base(&mut text);
    for i in 0..services {
        rules += write_service(&mut text, i, endpoints);
    }
    NftInput { text, rules }
}

/// The partial sync adding service number `existing`: only its own objects,
/// as kube-proxy's partial sync skips unchanged services.
pub fn add_service(existing: usize, endpoints: &[SocketAddrV4]) -> NftInput {
    let mut text = String::with_capacity(1000 + endpoints.len() * 400);
    let rules = write_service(&mut text, existing, endpoints);
    NftInput { text, rules }
}

pub fn full_sync_for(services: usize, endpoints: usize) -> NftInput {
    full_sync(services, &layout::endpoints(endpoints))
}

/// Rules and service-ips elements in `nft -j list table ip kube-proxy` output.
pub fn count_listed(json: &str) -> Result<(usize, usize), String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nft -j output is not JSON: {e}"))?;
    let items = value
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or("nft -j output has no `nftables` array")?;
    let rules = items.iter().filter(|i| i.get("rule").is_some()).count();
    let elements = items
        .iter()
        .filter_map(|i| i.get("map"))
        .find(|m| m.get("name").and_then(|n| n.as_str()) == Some("service-ips"))
        .and_then(|m| m.get("elem"))
        .and_then(|e| e.as_array())
        .map_or(0, |e| e.len());
    Ok((rules, elements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layout_has_the_service_ips_dispatch_and_hooks() {
        let input = full_sync_for(0, 1);
        assert_eq!(input.rules, BASE_RULES);
        let text = &input.text;
        assert!(text.contains(
            "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n"
        ));
        assert!(text.contains("nat-output { type nat hook output priority -100 ; }"));
        assert!(text.contains("nat-prerouting { type nat hook prerouting priority -100 ; }"));
        assert!(text.contains("ip daddr { 198.18.128.0/17 } drop"));
    }

    #[test]
    fn services_get_kube_proxys_chains_and_elements() {
        let input = full_sync_for(2, 3);
        assert_eq!(input.rules, expected_rules(2, 3));
        let text = &input.text;
        let svc = service_chain(1);
        assert!(
            svc.starts_with("service-") && svc.ends_with("-iq/svc1/tcp/p80"),
            "{svc}"
        );
        assert!(text.contains(&format!(
            "add rule ip kube-proxy {svc} ip daddr 198.18.128.2 ip saddr != 198.19.0.0/16 jump mark-for-masquerade\n"
        )));
        let ep = endpoint_chain(1, &layout::endpoint(2));
        assert!(ep.ends_with("-iq/svc1/tcp/p80__198.18.64.12/8080"), "{ep}");
        assert!(text.contains(&format!(
            "numgen random mod 3 vmap {{ 0 : goto {}, 1 : goto {}, 2 : goto {ep} }}\n",
            endpoint_chain(1, &layout::endpoint(0)),
            endpoint_chain(1, &layout::endpoint(1)),
        )));
        assert!(text.contains(&format!(
            "add rule ip kube-proxy {ep} meta l4proto tcp dnat to 198.18.64.12:8080\n"
        )));
        assert!(text.contains(&format!(
            "add element ip kube-proxy service-ips {{ 198.18.128.2 . tcp . 80 : goto {svc} }}\n"
        )));
    }

    #[test]
    fn partial_sync_touches_only_the_new_service() {
        let input = add_service(500, &layout::endpoints(1));
        assert_eq!(input.rules, 4);
        assert!(!input.text.contains("add table"));
        assert!(input.text.contains(&service_chain(500)));
        assert!(!input.text.contains(&service_chain(499)));
    }

    #[test]
    fn listing_is_counted() {
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{}},{"rule":{}},{"rule":{}},
            {"map":{"name":"service-ips","elem":[1,2,3]}},{"map":{"name":"firewall-ips"}}]}"#;
        assert_eq!(count_listed(json), Ok((2, 3)));
        assert!(count_listed("nope").is_err());
    }
}
