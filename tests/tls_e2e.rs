//! The agent over TLS (rustls): a coordinator trusting the plan's CA file
//! runs a plan; one with the wrong CA cannot connect. With `--client-ca`
//! the agent also checks the coordinator's certificate (mutual TLS).

mod agents;
mod common;
mod contract;

use agents::{node, run_json, Agent};
use common::{assert_one_line_error, run, run_in};
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    /// A client certificate the same CA signed, for mutual TLS.
    client_cert_pem: String,
    client_key_pem: String,
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
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["coordinator".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Writes `name` into `dir` and returns its path as a string.
fn put(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
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

#[test]
fn mutual_tls_runs_the_right_client_and_refuses_none_or_another_cas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pki();
    let other = pki();
    let cert = put(d, "cert.pem", &p.cert_pem);
    let key = put(d, "key.pem", &p.key_pem);
    let ca = put(d, "ca.pem", &p.ca_pem);
    put(d, "client.pem", &p.client_cert_pem);
    put(d, "client.key", &p.client_key_pem);
    put(d, "stranger.pem", &other.client_cert_pem);
    put(d, "stranger.key", &other.client_key_pem);
    let a = Agent::start(
        d,
        "mutual",
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
    );
    std::fs::write(d.join("mutual.tok"), &a.token).unwrap();
    let plan = |file: &str, identity: &str| {
        let text = format!(
            "name = \"mtls\"\nout = \"runs\"\n[[agents]]\nname = \"mutual\"\nurl = \"https://{}\"\ntoken_file = \"mutual.tok\"\nca_file = \"ca.pem\"\n{identity}[probes.steal]\nduration = \"1s\"\n",
            a.addr
        );
        std::fs::write(d.join(file), text).unwrap();
    };

    plan("none.toml", "");
    plan(
        "stranger.toml",
        "client_cert = \"stranger.pem\"\nclient_key = \"stranger.key\"\n",
    );
    for refused in ["none.toml", "stranger.toml"] {
        let r = run_in(&["run", refused], Some(d));
        assert_eq!(r.code, 2, "{refused}: {}{}", r.stdout, r.stderr);
        let run = run_json(d);
        contract::assert_bundles_under(d);
        let mutual = node(&run, "mutual");
        assert!(mutual["inventory"].is_null(), "{refused}: {mutual}");
        let message = mutual["errors"][0]["message"].as_str().unwrap().to_string();
        assert!(message.contains("alert"), "{refused}: {message}");
        if refused == "none.toml" {
            assert!(
                message.contains("give its plan entry client_cert"),
                "{message}"
            );
        }
        std::fs::remove_dir_all(d.join("runs")).unwrap();
    }

    plan(
        "right.toml",
        "client_cert = \"client.pem\"\nclient_key = \"client.key\"\n",
    );
    let r = run_in(&["run", "right.toml"], Some(d));
    // The steal probe's verdict is the machine's (a shared host can fail
    // it, exit 1); what this test judges is that the job ran over mutual
    // TLS: a result and no error.
    assert!(matches!(r.code, 0 | 1), "{}{}", r.stdout, r.stderr);
    let run = run_json(d);
    contract::assert_bundles_under(d);
    let mutual = node(&run, "mutual");
    assert_eq!(mutual["inventory"]["probe"], "inventory");
    assert_eq!(mutual["results"][0]["probe"], "steal", "{mutual}");
    assert!(mutual["errors"].as_array().unwrap().is_empty(), "{mutual}");
}

#[test]
fn bad_mutual_tls_input_exits_2_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pki();
    let cert = put(d, "cert.pem", &p.cert_pem);
    let key = put(d, "key.pem", &p.key_pem);
    put(d, "ca.pem", &p.ca_pem);
    put(d, "client.pem", &p.client_cert_pem);
    put(d, "client.key", &p.client_key_pem);
    let token = d.join("agent.token");
    agents::write_private(&token, &agents::random_token());
    let token = token.to_str().unwrap();
    let absent = d.join("absent.pem");
    let absent = absent.to_str().unwrap();
    let agent = |extra: &[&str]| {
        let mut args = vec!["agent", "--listen", "127.0.0.1:0", "--token-file", token];
        args.extend(extra);
        run(&args)
    };
    for (client_ca, says) in [
        (absent, "absent.pem"),
        (key.as_str(), "no certificate in the file"),
    ] {
        let r = agent(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            client_ca,
        ]);
        assert_one_line_error(&r, "--client-ca");
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
    let r = agent(&["--client-ca", &cert]);
    assert_one_line_error(&r, "--client-ca needs --tls-cert");

    let url = "https://127.0.0.1:1";
    for (identity, says) in [
        (
            "client_cert = \"nope.pem\"\nclient_key = \"client.key\"\n",
            "client_cert: ",
        ),
        (
            "client_cert = \"client.pem\"\nclient_key = \"nope.key\"\n",
            "client_key: ",
        ),
        (
            "client_cert = \"client.key\"\nclient_key = \"client.key\"\n",
            "client_cert: ",
        ),
        (
            "client_cert = \"client.pem\"\nclient_key = \"client.pem\"\n",
            "client_key: ",
        ),
        (
            "client_cert = \"client.pem\"\nclient_key = \"key.pem\"\n",
            "does not fit",
        ),
        (
            "client_cert = \"client.pem\"\n",
            "client_cert needs client_key",
        ),
    ] {
        std::fs::write(
            d.join("plan.toml"),
            format!("name = \"bad\"\n[[agents]]\nname = \"a\"\nurl = \"{url}\"\nca_file = \"ca.pem\"\n{identity}"),
        )
        .unwrap();
        let r = run_in(&["run", "plan.toml"], Some(d));
        assert_one_line_error(&r, "plan.toml:");
        assert!(r.stderr.contains(says), "{}", r.stderr);
        assert!(!d.join("runs").exists(), "nothing runs on a bad plan");
    }
}
