//! The agent over TLS (rustls): a coordinator trusting the plan's CA file
//! runs a plan; one with the wrong CA cannot connect.

mod agents;
mod common;
mod contract;

use agents::{node, run_json, Agent};
use common::run_in;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

#[test]
fn plan_over_tls_with_the_right_ca_and_refusal_with_the_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let other = pki();
    let d = dir.path();
    std::fs::write(d.join("cert.pem"), &p.cert_pem).unwrap();
    std::fs::write(d.join("key.pem"), &p.key_pem).unwrap();
    std::fs::write(d.join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(d.join("other-ca.pem"), &other.ca_pem).unwrap();
    let cert = d.join("cert.pem");
    let key = d.join("key.pem");
    let a = Agent::start(
        d,
        "secure",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    std::fs::write(d.join("secure.tok"), &a.token).unwrap();
    let plan = |ca: &str| {
        format!(
            "name = \"tls\"\nout = \"runs\"\n[[agents]]\nname = \"secure\"\nurl = \"https://{}\"\ntoken_file = \"secure.tok\"\nca_file = \"{ca}\"\n",
            a.addr
        )
    };
    std::fs::write(d.join("good.toml"), plan("ca.pem")).unwrap();
    let r = run_in(&["run", "good.toml"], Some(d));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let run = run_json(d);
    contract::assert_bundles_under(d);
    assert_eq!(node(&run, "secure")["inventory"]["probe"], "inventory");

    std::fs::remove_dir_all(d.join("runs")).unwrap();
    std::fs::write(d.join("bad.toml"), plan("other-ca.pem")).unwrap();
    let r = run_in(&["run", "bad.toml"], Some(d));
    assert_eq!(r.code, 2);
    let run = run_json(d);
    contract::assert_bundles_under(d);
    let message = node(&run, "secure")["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("TLS"), "{message}");

    // Plain HTTP to a TLS agent gets nowhere.
    let (status, _) = agents::http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
    assert_ne!(status, 200);
}
