//! Ground truth on real namespaces, real iptables/nft and real sockets (root
//! needed): the layouts DNAT to their endpoints, rule counts match
//! kube-proxy's, every timed connect walks the NAT rules, and the host's
//! ruleset and namespace list are the same before and after.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::connect::{self, Plan};
use super::layout::{self, SERVICE_PORT};
use super::modes::{backend, Backend, Mode};
use super::params::MAX_SAMPLES;
use super::sandbox::{process_prefix, Sandbox};
use super::sweep::expected_rules;
use super::*;
use crate::context::CancelToken;
use crate::system::netns::names_with_prefix;
use crate::system::tools;

/// The privileged tests here run one at a time so that the leak check can
/// look at this process's whole namespace prefix.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn usable_backends() -> Vec<Backend> {
    Mode::ALL.iter().filter_map(|m| backend(*m).ok()).collect()
}

fn vip_target(index: usize) -> SocketAddrV4 {
    SocketAddrV4::new(layout::vip(index), SERVICE_PORT)
}

#[test]
fn layouts_dnat_every_service_to_all_its_endpoints_and_match_rule_counts() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let _guard = serial();
    let backends = usable_backends();
    assert!(
        backends.iter().any(|b| b.mode != Mode::Ipvs),
        "no iptables or nft here"
    );
    for backend in backends {
        let mode = backend.mode;
        let sandbox = Sandbox::create(3).unwrap();
        let services = 7;
        backend.program_full(&sandbox.node, services, 3).unwrap();
        assert_eq!(
            backend.read_back_rules(&sandbox.node).unwrap(),
            expected_rules(mode, services, 3),
            "{mode}: rules read back"
        );
        if mode != Mode::Nftables {
            // kube-proxy's own figure: 5 + S x (2 + 3E).
            assert_eq!(expected_rules(mode, services, 3), 5 + 7 * (2 + 3 * 3));
        }
        for index in [0, 3, 6] {
            let seen: BTreeSet<u8> = connect::identify_many(&sandbox.node, vip_target(index), 60)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(
                seen,
                BTreeSet::from([0, 1, 2]),
                "{mode}: service {index} must reach all three endpoints"
            );
        }
        // A VIP that is not programmed reaches nothing.
        assert!(connect::identify_many(&sandbox.node, vip_target(services + 5), 1).is_err());

        // Adding one service as a partial sync keeps the old ones and adds it.
        backend.program_add(&sandbox.node, services, 3).unwrap();
        assert_eq!(
            backend.read_back_rules(&sandbox.node).unwrap(),
            expected_rules(mode, services + 1, 3),
            "{mode}: rules after adding one"
        );
        for index in [0, services] {
            let ids = connect::identify_many(&sandbox.node, vip_target(index), 3).unwrap();
            assert!(ids.iter().all(|id| *id < 3), "{mode}: {ids:?}");
        }

        backend.clear(&sandbox.node).unwrap();
        assert!(
            connect::identify_many(&sandbox.node, vip_target(0), 1).is_err(),
            "{mode}: cleared layout still DNATs"
        );
    }
}

#[test]
fn every_timed_connect_is_a_new_connection_through_the_nat_rules() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let _guard = serial();
    let Some(backend) = usable_backends()
        .into_iter()
        .find(|b| matches!(b.mode, Mode::IptablesNft | Mode::IptablesLegacy))
    else {
        panic!("needs iptables-nft or iptables-legacy");
    };
    let sandbox = Sandbox::create(1).unwrap();
    backend.program_full(&sandbox.node, 50, 1).unwrap();
    let plan = Plan {
        targets: vec![vip_target(0), vip_target(49)],
        warmup: 5,
        samples: 100,
        time_limit: Duration::from_secs(60),
    };
    let sampled = connect::sample(&sandbox.node, &plan, &CancelToken::new()).unwrap();
    assert!(!sampled.truncated);
    assert_eq!(sampled.failures, 0);
    assert_eq!(sampled.histograms[0].len(), 100);
    assert_eq!(sampled.identities, [0, 0]);
    // The SYN of every connect (1 identity + 5 warm-up + 100 timed) matched
    // the service's KUBE-SERVICES rule: none reused a conntrack entry.
    for index in [0, 49] {
        assert_eq!(
            backend.service_rule_packets(&sandbox.node, index).unwrap(),
            Some(106),
            "{}: service {index}",
            backend.mode
        );
    }
}

/// A host ruleset with counters and generated-on comments removed.
fn host_rules() -> String {
    let mut out = String::new();
    for (tool, args) in [
        ("iptables-legacy-save", &[][..]),
        ("iptables-nft-save", &[][..]),
        ("nft", &["list", "ruleset"][..]),
    ] {
        let Some(path) = tools::which(tool) else {
            continue;
        };
        let output = Command::new(path).args(args).output().unwrap();
        out.push_str(&format!("== {tool}\n"));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match line.find(" [") {
                Some(at) if line.starts_with(':') => &line[..at],
                _ => line,
            };
            let line = match line.find("counter packets") {
                Some(at) => &line[..at],
                None => line,
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn a_run_leaves_the_host_ruleset_and_namespaces_as_they_were() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let _guard = serial();
    let before = host_rules();
    let params = Params {
        counts: vec![10, 200],
        samples: 30,
        warmup: 3,
        endpoints: 2,
        ..Params::default()
    };
    let result = run(&params, &ProbeContext::local()).unwrap();
    assert_eq!(
        host_rules(),
        before,
        "the host's iptables/nft ruleset changed"
    );
    assert_eq!(names_with_prefix(&process_prefix()), Vec::<String>::new());

    // The contract keys are there for every usable mode.
    let skipped = result.facts["skipped"].as_object().unwrap();
    for mode in Mode::ALL {
        if skipped.contains_key(mode.as_str()) {
            continue;
        }
        for count in [10, 200] {
            let key = format!("{mode}/{count}");
            for position in ["front", "middle", "end"] {
                let metric = &result.metrics[&format!("{key}/{position}")];
                assert_eq!(metric.count, 30, "{key}/{position}");
                assert!(
                    metric.p50 > 1_000,
                    "a connect over veth takes more than 1 µs"
                );
            }
            assert!(result.facts["programming_ms"][&key].as_f64().unwrap() > 0.0);
            assert!(result.facts["update_ms"][&key].as_f64().unwrap() > 0.0);
            assert_eq!(
                result.facts["rules"][&key],
                result.facts["rules_expected"][&key]
            );
        }
    }
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        assert!(skipped["ipvs"].as_str().unwrap().contains("IP_VS"));
    }
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
}

/// iptables-legacy in a container without the legacy tables: the tool is
/// installed but every restore fails. That mode is skipped with the tool's
/// reason and the others still run.
#[test]
fn an_installed_mode_that_refuses_to_program_is_skipped_and_the_rest_run() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let _guard = serial();
    let refusing = Backend::with_tools(
        Mode::IptablesLegacy,
        "/bin/false".into(),
        "/bin/false".into(),
    );
    let working: Vec<Backend> = usable_backends()
        .into_iter()
        .filter(|b| b.mode == Mode::Nftables)
        .collect();
    assert_eq!(working.len(), 1, "nft is installed here");
    let params = Params {
        counts: vec![10],
        samples: 10,
        warmup: 1,
        endpoints: 1,
        ..Params::default()
    };
    let mut result = ProbeResult::new(NAME, "local");
    let backends = [refusing, working[0].clone()];
    let outcome = sweep::run(&backends, &params, &ProbeContext::local(), &mut result)
        .expect("a refusing mode is a skip, not an error");
    let reason = outcome.unusable["iptables-legacy"].as_str().unwrap();
    assert!(reason.contains("refused to program"), "{reason}");
    assert!(!outcome.unusable.contains_key("nftables"));
    assert_eq!(result.metrics["nftables/10/front"].count, 10);
    assert_eq!(names_with_prefix(&process_prefix()), Vec::<String>::new());
}

#[test]
fn a_cancelled_run_stops_mid_sampling_and_cleans_up() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let _guard = serial();
    let mut ctx = ProbeContext::local();
    ctx.cancel =
        CancelToken::new().with_deadline(std::time::Instant::now() + Duration::from_secs(1));
    let params = Params {
        modes: vec![Mode::Nftables, Mode::IptablesNft],
        counts: vec![10],
        samples: MAX_SAMPLES,
        sample_time_limit: crate::units::HumanDuration(Duration::from_secs(600)),
        ..Params::default()
    };
    let started = std::time::Instant::now();
    let err = run(&params, &ctx).unwrap_err();
    assert!(matches!(err, ProbeError::Cancelled { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancel was not prompt"
    );
    assert_eq!(names_with_prefix(&process_prefix()), Vec::<String>::new());
}

#[test]
fn counts_beyond_30000_are_refused_before_anything_runs() {
    let params = Params {
        counts: vec![10, 30_001],
        ..Params::default()
    };
    let err = run(&params, &ProbeContext::local()).unwrap_err();
    assert!(matches!(err, ProbeError::InvalidParam { .. }), "{err}");
}
