//! Mutation fuzzing of what an attacker or a careless operator controls: the
//! plan parser, the job JSON an agent accepts, and the HTTP request head a
//! real agent reads. No input may panic the parser or stop the agent.
//! Bounded by IQ_FUZZ_SECONDS per target (default: a short fixed number of
//! cases); `scripts/fuzz` runs the long version. IQ_FUZZ_SEED repeats a run.

mod agents;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use agents::{http, Agent};

/// Cases per parser when no time budget is given.
const DEFAULT_CASES: u64 = 1500;
/// Cases against the live agent (each a connection) when no budget is given.
const DEFAULT_HTTP_CASES: u64 = 400;

struct Rng(u64);

impl Rng {
    fn new() -> Self {
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
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that tend to reach corners of TOML, JSON and HTTP parsers.
const DICTIONARY: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "{",
    "}",
    "=",
    ",",
    ":",
    "\n",
    "\r\n",
    "\0",
    "\\u0000",
    "-1",
    "1e999",
    "18446744073709551616",
    "0x",
    "nan",
    "inf",
    "true",
    "null",
    "\u{202e}",
    "\x1b[2J",
    "::",
    "/..",
    "%00",
    "Content-Length: 99999999999",
    "Transfer-Encoding: chunked",
    "Host: evil",
    "Origin: x",
    " ",
    "\t",
    "ÿ",
    "🦀",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                let end = (at + rng.below(32)).min(out.len());
                out.drain(at..end);
            }
            3 if at < out.len() => {
                let end = (at + rng.below(64)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            4 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                let long = vec![b'9'; rng.below(5000)];
                out.splice(at..at, long);
            }
        }
    }
    out
}

/// Runs `case` on mutations of `seeds` for the budget; returns the count.
fn fuzz(name: &str, seeds: &[Vec<u8>], default_cases: u64, mut case: impl FnMut(&[u8])) -> u64 {
    let budget = std::env::var("IQ_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut rng = Rng::new();
    let started = Instant::now();
    let mut cases = 0u64;
    loop {
        let done = match budget {
            Some(b) => started.elapsed() >= b,
            None => cases >= default_cases,
        };
        if done {
            break;
        }
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        case(&input);
        cases += 1;
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
    fuzz("plan", &plan_seeds(), DEFAULT_CASES, |input| {
        let text = String::from_utf8_lossy(input);
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            let _ = infraqual::coordinator::plan::Plan::parse(&text, "fuzz.toml", base.path());
        }));
        assert!(parsed.is_ok(), "the plan parser panicked on:\n{text}");
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
    fuzz("job json", &job_seeds(), DEFAULT_CASES, |input| {
        let checked = catch_unwind(|| {
            if let Ok(job) = serde_json::from_slice::<infraqual::api::JobRequest>(input) {
                let _ = infraqual_probes::registry::validate(job.probe, &job.params);
            }
        });
        assert!(
            checked.is_ok(),
            "job validation panicked on {}",
            String::from_utf8_lossy(input)
        );
    });
}

#[test]
fn mutated_request_heads_never_stop_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Agent::start(tmp.path(), "fuzz", &[]);
    let seeds: Vec<Vec<u8>> = [
        format!(
            "GET /v1/health HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            a.addr, a.token
        ),
        format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{{\"probe\":\"inventory\"}}",
            a.addr, a.token
        ),
        format!(
            "DELETE /v1/jobs/rtt-1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            a.addr, a.token
        ),
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let cases = fuzz("http head", &seeds, DEFAULT_HTTP_CASES, |input| {
        let Ok(mut s) = TcpStream::connect(&a.addr) else {
            panic!("the agent stopped accepting connections");
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = s.write_all(input);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = [0u8; 512];
        let _ = s.read(&mut out);
    });
    assert!(cases > 0);
    let (code, body) = http(&a.addr, "GET", "/v1/health", Some(&a.token), b"");
    assert_eq!(
        code, 200,
        "the agent still serves after the fuzzing: {body}"
    );
}
