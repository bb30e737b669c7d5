//! kube-proxy's iptables layout as iptables-restore input (pure text; the
//! sandbox applies it). Mirrors pkg/proxy/iptables/proxier.go syncProxyRules
//! for ClusterIP services whose endpoints are all ready and remote:
//!
//! - nat: KUBE-SERVICES holds one rule per service (comment, -d VIP, -p tcp,
//!   --dport) in list order, so a packet for the last service is compared
//!   against every rule before it (O(n)), then the KUBE-NODEPORTS tail rule;
//!   KUBE-SVC-<hash> masquerades off-cluster sources and picks an endpoint
//!   with `-m statistic --mode random --probability 1/(n-i)`; KUBE-SEP-<hash>
//!   marks hairpin traffic and DNATs; KUBE-MARK-MASQ and KUBE-POSTROUTING do
//!   the masquerade mark.
//! - filter: kube-proxy's top-level chains and its three KUBE-FORWARD rules.
//! - The jumps from PREROUTING/OUTPUT/POSTROUTING (and the filter hooks)
//!   kube-proxy installs with `iptables -I` on a full sync; here they ride in
//!   the same restore, which is correct for a fresh namespace.
//!
//! A partial sync (adding one service) writes what kube-proxy's partial sync
//! writes since KEP-3453: every top-level chain in full (so all S+1
//! KUBE-SERVICES rules) plus the new service's own chains, with --noflush.

use std::fmt::Write;
use std::net::SocketAddrV4;

use super::hash::chain_hash;
use super::layout::{
    self, service_port_name, vip, CLUSTER_CIDR, LARGE_CLUSTER_ENDPOINTS, MASQUERADE_MARK, PROTOCOL,
    SERVICE_PORT,
};

/// One iptables-restore input and what it holds.
#[derive(Clone, Debug)]
pub struct RestoreInput {
    pub text: String,
    /// Rules in the nat table's KUBE-* chains: what kube-proxy's
    /// `natRules.Lines()` counts (the built-in chain jumps are not in it).
    pub nat_rules: usize,
    pub filter_rules: usize,
}

/// kube-proxy's rule count for S ClusterIP services with E endpoints each
/// (pkg/proxy/iptables/number_generated_rules_test.go): 5 fixed rules
/// (3 KUBE-POSTROUTING, 1 KUBE-MARK-MASQ, the KUBE-NODEPORTS tail), and per
/// service 1 KUBE-SERVICES rule + 1 KUBE-SVC masquerade rule + E KUBE-SVC
/// endpoint choices + 2E KUBE-SEP rules (hairpin mark, DNAT).
pub fn expected_nat_rules(services: usize, endpoints: usize) -> usize {
    5 + services * (2 + 3 * endpoints)
}

/// Everything for `services` services, as kube-proxy's first full sync.
pub fn full_sync(services: usize, endpoints: &[SocketAddrV4]) -> RestoreInput {
    render(services, endpoints, 0..services, true)
}

/// The partial sync after service number `existing` (0-based) is added to
/// `existing` programmed ones.
pub fn add_service(existing: usize, endpoints: &[SocketAddrV4]) -> RestoreInput {
    render(existing + 1, endpoints, existing..existing + 1, false)
}

/// Chain names: kube-proxy's portProtoHash and servicePortEndpointChainName.
pub fn service_chain(index: usize) -> String {
    format!(
        "KUBE-SVC-{}",
        chain_hash(&format!("{}{PROTOCOL}", service_port_name(index)), 16)
    )
}

pub fn endpoint_chain(index: usize, endpoint: &SocketAddrV4) -> String {
    format!(
        "KUBE-SEP-{}",
        chain_hash(
            &format!("{}{PROTOCOL}{endpoint}", service_port_name(index)),
            16
        )
    )
}

/// kube-proxy's computeProbability: `%0.10f` of 1/n.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];
const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];

/// kube-proxy's iptablesJumpChains: (table, source chain, match args,
/// comment, target). kube-proxy prepends each with `iptables -I`.
const JUMPS: [(&str, &str, &str, &str, &str); 12] = [
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW ",
        "kubernetes externally-visible service portals",
        "KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW ",
        "kubernetes externally-visible service portals",
        "KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "INPUT",
        "",
        "kubernetes health check service ports",
        "KUBE-NODEPORTS",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW ",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "filter",
        "OUTPUT",
        "-m conntrack --ctstate NEW ",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "",
        "kubernetes forwarding rules",
        "KUBE-FORWARD",
    ),
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW ",
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "OUTPUT",
        "-m conntrack --ctstate NEW ",
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW ",
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "nat",
        "OUTPUT",
        "",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "nat",
        "PREROUTING",
        "",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "nat",
        "POSTROUTING",
        "",
        "kubernetes postrouting rules",
        "KUBE-POSTROUTING",
    ),
];

fn write_jumps(out: &mut String, table: &str) {
    // Prepending in list order leaves them in reverse order in each chain.
    for (t, source, args, comment, target) in JUMPS.iter().rev() {
        if *t == table {
            let _ = writeln!(
                out,
                "-A {source} {args}-m comment --comment \"{comment}\" -j {target}"
            );
        }
    }
}

fn render(
    services: usize,
    endpoints: &[SocketAddrV4],
    changed: std::ops::Range<usize>,
    with_jumps: bool,
) -> RestoreInput {
    let e = endpoints.len();
    let large_cluster = services * e > LARGE_CLUSTER_ENDPOINTS;
    let mut out = String::with_capacity(256 + services * 160 + changed.len() * e * 260);

    // filter: written in full on every sync.
    out.push_str("*filter\n");
    for chain in FILTER_CHAINS {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    out.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" \
         -m mark --mark {m}/{m} -j ACCEPT",
        m = MASQUERADE_MARK
    );
    out.push_str(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" \
         -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
    );
    let filter_rules = 3;
    if with_jumps {
        write_jumps(&mut out, "filter");
    }
    out.push_str("COMMIT\n");

    // nat: chain lines first (a chain line flushes that chain under --noflush).
    out.push_str("*nat\n");
    for chain in NAT_CHAINS {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for i in changed.clone() {
        let _ = writeln!(out, ":{} - [0:0]", service_chain(i));
        for ep in endpoints {
            let _ = writeln!(out, ":{} - [0:0]", endpoint_chain(i, ep));
        }
    }

    let mut nat_rules = 0usize;
    let mut rule = |out: &mut String, line: std::fmt::Arguments| {
        let _ = out.write_fmt(line);
        out.push('\n');
        nat_rules += 1;
    };
    rule(
        &mut out,
        format_args!(
            "-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN",
            m = MASQUERADE_MARK
        ),
    );
    rule(
        &mut out,
        format_args!("-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}"),
    );
    rule(
        &mut out,
        format_args!(
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" \
             -j MASQUERADE --random-fully"
        ),
    );
    rule(
        &mut out,
        format_args!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}"),
    );

    for i in 0..services {
        let name = service_port_name(i);
        let svc_chain = service_chain(i);
        let ip = vip(i);
        let clusterip_match = format!(
            "-m comment --comment \"{name} cluster IP\" -m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {SERVICE_PORT}"
        );
        rule(
            &mut out,
            format_args!("-A KUBE-SERVICES {clusterip_match} -j {svc_chain}"),
        );
        if !changed.contains(&i) {
            continue;
        }
        rule(
            &mut out,
            format_args!("-A {svc_chain} {clusterip_match} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ"),
        );
        for (n, ep) in endpoints.iter().enumerate() {
            let comment = if large_cluster {
                String::new()
            } else {
                format!("-m comment --comment \"{name} -> {ep}\" ")
            };
            let statistic = if n + 1 < e {
                format!(
                    "-m statistic --mode random --probability {} ",
                    probability(e - n)
                )
            } else {
                String::new()
            };
            rule(
                &mut out,
                format_args!(
                    "-A {svc_chain} {comment}{statistic}-j {}",
                    endpoint_chain(i, ep)
                ),
            );
        }
        for ep in endpoints {
            let sep = endpoint_chain(i, ep);
            let comment = if large_cluster {
                String::new()
            } else {
                format!("-m comment --comment {name} ")
            };
            rule(
                &mut out,
                format_args!("-A {sep} {comment}-s {} -j KUBE-MARK-MASQ", ep.ip()),
            );
            rule(
                &mut out,
                format_args!(
                    "-A {sep} {comment}-m {PROTOCOL} -p {PROTOCOL} -j DNAT --to-destination {ep}"
                ),
            );
        }
    }
    rule(
        &mut out,
        format_args!(
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be \
             the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
        ),
    );
    if with_jumps {
        write_jumps(&mut out, "nat");
    }
    out.push_str("COMMIT\n");

    RestoreInput {
        text: out,
        nat_rules,
        filter_rules,
    }
}

/// Counts the rules in KUBE-* chains of `iptables-save -t nat` output.
pub fn count_saved_kube_rules(saved: &str) -> usize {
    saved.lines().filter(|l| l.starts_with("-A KUBE-")).count()
}

/// The packet counter of the KUBE-SERVICES rule for `index`, from
/// `iptables-save -c -t nat` output (`[pkts:bytes] -A KUBE-SERVICES ...`).
pub fn saved_service_rule_packets(saved: &str, index: usize) -> Option<u64> {
    let target = format!("-j {}", service_chain(index));
    saved
        .lines()
        .find(|l| l.contains("-A KUBE-SERVICES ") && l.trim_end().ends_with(&target))
        .and_then(|l| l.strip_prefix('['))
        .and_then(|l| l.split(':').next())
        .and_then(|p| p.parse().ok())
}

/// The text for a layout with `services` services and `endpoints` endpoints.
pub fn full_sync_for(services: usize, endpoints: usize) -> RestoreInput {
    full_sync(services, &layout::endpoints(endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_counts_match_kube_proxys_table() {
        // (services, endpoints, expected NAT rules) from number_generated_rules_test.go.
        for (s, e, want) in [
            (1, 1, 10),
            (1, 2, 13),
            (1, 10, 37),
            (10, 1, 55),
            (10, 2, 85),
            (10, 10, 325),
        ] {
            assert_eq!(expected_nat_rules(s, e), want, "{s}x{e}");
            assert_eq!(full_sync_for(s, e).nat_rules, want, "{s}x{e}");
        }
        assert_eq!(
            full_sync_for(10_000, 1).nat_rules,
            expected_nat_rules(10_000, 1)
        );
    }

    #[test]
    fn full_sync_has_kube_proxys_shape() {
        let input = full_sync_for(3, 3);
        let text = &input.text;
        assert!(text.starts_with("*filter\n:KUBE-SERVICES - [0:0]\n"));
        assert_eq!(text.matches("COMMIT\n").count(), 2);
        let svc0 = service_chain(0);
        assert!(text.contains(&format!(
            "-A KUBE-SERVICES -m comment --comment \"iq/svc0:p80 cluster IP\" -m tcp -p tcp \
             -d 198.18.128.1 --dport 80 -j {svc0}\n"
        )));
        assert!(text.contains(&format!(
            "-A {svc0} -m comment --comment \"iq/svc0:p80 cluster IP\" -m tcp -p tcp -d 198.18.128.1 \
             --dport 80 ! -s 198.19.0.0/16 -j KUBE-MARK-MASQ\n"
        )));
        // 1/3, 1/2, then the unconditional last choice.
        let choices: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("-A {svc0} ")) && l.contains("-j KUBE-SEP-"))
            .collect();
        assert_eq!(choices.len(), 3);
        assert!(choices[0].contains("--probability 0.3333333333 "));
        assert!(choices[1].contains("--probability 0.5000000000 "));
        assert!(!choices[2].contains("statistic"));
        assert!(text.contains("-j DNAT --to-destination 198.18.64.12:8080\n"));
        // KUBE-SERVICES in list order, the nodeports tail last.
        let services: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("-A KUBE-SERVICES"))
            .collect();
        assert_eq!(services.len(), 4);
        assert!(services[2].contains("198.18.128.3 "));
        assert!(services[3].contains("KUBE-NODEPORTS"));
        // Hooked from PREROUTING and OUTPUT.
        assert!(text.contains(
            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        ));
        assert!(text.contains(
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        ));
        assert!(text.contains("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"));
    }

    #[test]
    fn chain_names_fit_iptables_limit_and_are_unique() {
        let eps = layout::endpoints(3);
        let mut names = std::collections::BTreeSet::new();
        for i in 0..50 {
            let svc = service_chain(i);
            assert!(svc.len() <= 28, "{svc}");
            assert!(names.insert(svc));
            for ep in &eps {
                assert!(names.insert(endpoint_chain(i, ep)));
            }
        }
    }

    #[test]
    fn large_clusters_drop_endpoint_comments_like_kube_proxy() {
        let text = full_sync_for(1001, 1).text;
        assert!(!text.contains(" -> 198.18.64.10:8080"));
        assert!(full_sync_for(1000, 1)
            .text
            .contains("\"iq/svc0:p80 -> 198.18.64.10:8080\""));
    }

    #[test]
    fn partial_sync_rewrites_top_level_chains_and_only_the_new_service() {
        let input = add_service(100, &layout::endpoints(2));
        let text = &input.text;
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("-A KUBE-SERVICES"))
                .count(),
            102,
            "all 101 services plus the nodeports tail"
        );
        assert!(text.contains(&format!(":{} - [0:0]", service_chain(100))));
        assert!(!text.contains(&format!(":{} - [0:0]", service_chain(99))));
        assert!(!text.contains("-A PREROUTING"), "jumps exist already");
    }

    #[test]
    fn saved_counters_are_read_back() {
        let saved = format!(
            "[7:420] -A KUBE-SERVICES -d 198.18.128.1/32 -p tcp -m comment --comment \"x\" -m tcp \
             --dport 80 -j {}\n",
            service_chain(0)
        );
        assert_eq!(saved_service_rule_packets(&saved, 0), Some(7));
        assert_eq!(saved_service_rule_packets(&saved, 1), None);
        assert_eq!(
            count_saved_kube_rules(&saved),
            0,
            "counters prefix the line"
        );
        assert_eq!(
            count_saved_kube_rules("-A KUBE-MARK-MASQ -j MARK\n-A OUTPUT -j X\n"),
            1
        );
    }
}
