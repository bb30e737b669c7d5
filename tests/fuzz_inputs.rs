//! Property-based fuzzing (proptest) of what an attacker or a careless
//! operator controls: the plan parser, the job JSON an agent accepts, and
//! the HTTP request head a real agent reads. No input may panic a parser or
//! stop the agent. Each target draws from two generators: inputs built from
//! the format's grammar with hostile values (they reach validation, not
//! just the tokenizer) and byte-level mutations of real seeds. A failing
//! case is shrunk to a minimal input before it is reported.
//! Bounded by IQ_FUZZ_SECONDS per target (default: a short fixed number of
//! cases); `scripts/fuzz` runs the long version. IQ_FUZZ_SEED repeats a run.

mod agents;
mod fuzzing;

use std::fmt::Debug;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use agents::{http, Agent};
use fuzzing::{http_heads, job_bodies, plans};

/// Cases per parser when no time budget is given.
const DEFAULT_CASES: u64 = 1500;
/// Cases against the live agent (each a connection) when no budget is given.
const DEFAULT_HTTP_CASES: u64 = 400;
/// Cases per runner; a time budget runs batches until it is spent.
const BATCH: u64 = 250;

fn seed() -> u64 {
    let seed = std::env::var("IQ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("IQ_FUZZ_SEED={seed}");
    seed
}

/// Runs `test` on values of `strategy` for the budget (or `default_cases`);
/// returns the number of cases. A failure panics with the shrunk input.
fn fuzz<S>(
    name: &str,
    strategy: S,
    default_cases: u64,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S: Strategy,
    S::Value: AsRef<[u8]> + Debug,
{
    let budget = std::env::var("IQ_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let seed = seed();
    let started = Instant::now();
    let mut cases = 0u64;
    for batch in 0u64.. {
        let left = match budget {
            Some(b) if started.elapsed() >= b => break,
            Some(_) => BATCH,
            None if cases >= default_cases => break,
            None => BATCH.min(default_cases - cases),
        };
        let mut rng_seed = [0u8; 32];
        rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
        rng_seed[8..16].copy_from_slice(&batch.to_le_bytes());
        let config = Config {
            cases: left as u32,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed));
        match runner.run(&strategy, &test) {
            Ok(()) => cases += left,
            Err(TestError::Fail(reason, minimal)) => {
                let minimal = String::from_utf8_lossy(minimal.as_ref());
                panic!("fuzz {name}: {reason}\nminimal input: {minimal:?}\n(IQ_FUZZ_SEED={seed})")
            }
            Err(TestError::Abort(reason)) => panic!("fuzz {name}: aborted: {reason}"),
        }
    }
    eprintln!(
        "fuzz {name}: {cases} cases in {} ms, no panic",
        started.elapsed().as_millis()
    );
    cases
}

fn plan_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/plans");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert!(!seeds.is_empty());
    seeds.sort();
    seeds
}

#[test]
fn the_plan_parser_never_panics() {
    let base = tempfile::tempdir().unwrap();
    // Files a generated plan may name, so parsing goes past "no such file".
    std::fs::write(
        base.path().join("token"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    std::fs::write(base.path().join("ca.pem"), "not a certificate").unwrap();
    // The token files the example plans name.
    let secrets = base.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for seed in plan_seeds() {
        for name in String::from_utf8_lossy(&seed)
            .lines()
            .filter_map(|l| l.split_once("= \"secrets/").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split('"').next())
        {
            std::fs::write(secrets.join(name), "0123456789abcdef0123456789abcdef").unwrap();
        }
    }
    fuzz("plan", plans(plan_seeds()), DEFAULT_CASES, |input| {
        let text = String::from_utf8_lossy(&input);
        let _ = infraqual::coordinator::plan::Plan::parse(&text, "fuzz.toml", base.path());
        Ok(())
    });
}

fn job_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"probe":"fsync","params":{"dir":"/var/lib/etcd","size":"22MiB","block_size":2300}}"#,
        r#"{"probe":"rtt","params":{"targets":[{"node":"b","path":"native","address":"10.0.0.2","port":7071}],"count":100,"rate":50.5,"kinds":["udp","tcp_rr"]},"lease_ms":15000}"#,
        r#"{"probe":"mtu","params":{"targets":[{"node":"b","address":"10.0.0.2","port":7071}],"max_packet":9000}}"#,
        r#"{"probe":"services","params":{"counts":[10,100],"modes":["nftables"]},"deadline_ms":60000}"#,
        r#"{"probe":"steal","params":{"duration":"10s"}}"#,
        r#"{"probe":"inventory"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[test]
fn job_json_parsing_and_validation_never_panic() {
    fuzz(
        "job json",
        job_bodies(job_seeds()),
        DEFAULT_CASES,
        |input| {
            if let Ok(job) = serde_json::from_slice::<infraqual::api::JobRequest>(&input) {
                let _ = infraqual_probes::registry::validate(job.probe, &job.params);
            }
            Ok(())
        },
    );
}

#[test]
fn mutated_request_heads_never_stop_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "fuzz", &[]);
    let cases = fuzz(
        "http head",
        http_heads(&a.addr, &a.token),
        DEFAULT_HTTP_CASES,
        |input| {
            let mut s = TcpStream::connect(&a.addr)
                .map_err(|e| TestCaseError::fail(format!("the agent stopped accepting: {e}")))?;
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let _ = s.write_all(&input);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = [0u8; 512];
            let _ = s.read(&mut out);
            Ok(())
        },
    );
    assert!(cases > 0);
    let (code, body) = http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
    assert_eq!(
        code, 200,
        "the agent still serves after the fuzzing: {body}"
    );
}
