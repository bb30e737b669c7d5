//! proptest strategies for tests/fuzz_inputs.rs: grammar-built inputs with
//! hostile values, and byte-level mutations of real seeds.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};

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

/// Strings a field of a plan or job could plausibly or hostilely hold.
const VALUES: &[&str] = &[
    "",
    "30s",
    "0s",
    "1ms",
    "999999h",
    "-5s",
    "22MiB",
    "0B",
    "16EiB",
    "etcd",
    "steal",
    "fsync",
    "rtt",
    "mtu",
    "services",
    "inventory",
    "native",
    "overlay",
    "udp",
    "tcp_rr",
    "iptables-nft",
    "nftables",
    "ipvs",
    "etcd-wal",
    "fio-etcd",
    "http://127.0.0.1:1",
    "https://127.0.0.1:7070",
    "https://[::1]:7070",
    "http://host",
    "10.0.0.2",
    "::1",
    "256.1.1.1",
    "10.0.0.0/8",
    "token",
    "ca.pem",
    "../../etc/shadow",
    "/var/lib/etcd",
    "a b",
    "a/b",
    "\u{1b}[31m",
    "\u{0}",
];

/// Keys of plans and probe parameters, plus strangers.
const KEYS: &[&str] = &[
    "name",
    "profile",
    "out",
    "lease",
    "agents",
    "url",
    "token_file",
    "ca_file",
    "client_cert",
    "client_key",
    "labels",
    "addresses",
    "discover",
    "services",
    "port",
    "path",
    "dns_server",
    "probes",
    "steal",
    "fsync",
    "rtt",
    "mtu",
    "inventory",
    "duration",
    "dir",
    "size",
    "block_size",
    "mode",
    "rate",
    "paths",
    "peers",
    "count",
    "kinds",
    "targets",
    "node",
    "address",
    "modes",
    "counts",
    "max_packet",
    "rounds",
    "unknown",
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    Insert(Index, u8),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Token(Index, &'static str),
    Long(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<Index>(), select(DICTIONARY)).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 0usize..5000).prop_map(|(i, n)| Mutation::Long(i, n)),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::FlipBit(i, bit) if !out.is_empty() => {
                let i = i.index(out.len());
                out[i] ^= 1 << bit;
            }
            Mutation::Insert(i, byte) => {
                let i = at(i, out.len());
                out.insert(i, *byte);
            }
            Mutation::Delete(i, n) if !out.is_empty() => {
                let i = i.index(out.len());
                let end = (i + n).min(out.len());
                out.drain(i..end);
            }
            Mutation::Duplicate(i, n) if !out.is_empty() => {
                let i = i.index(out.len());
                let copy = out[i..(i + n).min(out.len())].to_vec();
                out.splice(i..i, copy);
            }
            Mutation::Token(i, token) => {
                let i = at(i, out.len());
                out.splice(i..i, token.bytes());
            }
            Mutation::Long(i, n) => {
                let i = at(i, out.len());
                out.splice(i..i, std::iter::repeat_n(b'9', *n));
            }
            _ => {}
        }
    }
    out
}

/// Byte-level mutations of one of `seeds`.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (select(seeds), vec(mutation(), 1..6)).prop_map(|(seed, m)| apply(&seed, &m))
}

fn toml_leaf() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        select(VALUES).prop_map(|s| toml::Value::String(s.to_string())),
        any::<String>().prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(65535), Just(65536)]
            .prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ]
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    toml_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(toml::Value::Array),
            btree_map(select(KEYS), inner, 0..6).prop_map(|m| {
                toml::Value::Table(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A value for a plan key: mostly one of the plausible `choices`,
/// sometimes anything.
fn plan_field(choices: &'static [&'static str]) -> BoxedStrategy<toml::Value> {
    prop_oneof![
        8 => select(choices).prop_map(|s| toml::Value::String(s.to_string())),
        1 => toml_leaf(),
        1 => toml_value(),
    ]
    .boxed()
}

/// Keys a table may hold: `known` (each with its value strategy), each
/// present or not, and now and then a stranger.
fn table(
    known: Vec<(&'static str, BoxedStrategy<toml::Value>)>,
) -> impl Strategy<Value = toml::Table> {
    let fields: Vec<_> = known
        .into_iter()
        .map(|(key, value)| proptest::option::weighted(0.7, value).prop_map(move |v| (key, v)))
        .collect();
    (
        fields,
        proptest::option::weighted(0.1, (select(KEYS), toml_value())),
    )
        .prop_map(|(fields, stranger)| {
            let mut t = toml::Table::new();
            for (key, value) in fields {
                if let Some(v) = value {
                    t.insert(key.to_string(), v);
                }
            }
            if let Some((k, v)) = stranger {
                t.insert(k.to_string(), v);
            }
            t
        })
}

fn plan_agent() -> impl Strategy<Value = toml::Table> {
    let map = |keys: &'static [&'static str]| {
        btree_map(select(keys), plan_field(VALUES), 0..3)
            .prop_map(|m| {
                toml::Value::Table(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            })
            .boxed()
    };
    table(vec![
        ("name", plan_field(&["a", "b", "oslo-1", "a b", "a/b", ""])),
        (
            "url",
            plan_field(&[
                "http://127.0.0.1:7070",
                "https://127.0.0.1:7070",
                "https://[::1]:1",
                "http://host",
                "ftp://x:1",
                "http://127.0.0.1:99999",
            ]),
        ),
        ("token_file", plan_field(&["token", "absent", ""])),
        ("ca_file", plan_field(&["ca.pem", "absent"])),
        ("client_cert", plan_field(&["ca.pem", "token"])),
        ("client_key", plan_field(&["ca.pem", "token"])),
        ("labels", map(&["region", "disk", ""])),
        ("addresses", map(&["native", "overlay", "a b"])),
    ])
}

fn probe_params() -> impl Strategy<Value = toml::Table> {
    btree_map(
        select(KEYS),
        prop_oneof![2 => toml_leaf(), 1 => toml_value()],
        0..6,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A plan whose shape follows the plan grammar (top-level keys, agents,
/// probe sections named after real probes) with values drawn from hostile
/// sets, so most inputs reach the plan's own validation.
fn grammar_plan() -> impl Strategy<Value = Vec<u8>> {
    let top = table(vec![
        ("name", plan_field(&["t", "", "\u{1b}[2J"])),
        ("profile", plan_field(&["etcd", "absent.toml", ""])),
        ("out", plan_field(&["runs", "/", ""])),
        ("lease", plan_field(&["10s", "1s", "11m", "0s", "x"])),
    ]);
    let probe_names = &[
        "inventory",
        "steal",
        "fsync",
        "rtt",
        "mtu",
        "services",
        "nope",
    ][..];
    (
        top,
        vec(plan_agent(), 0..4),
        btree_map(select(probe_names), probe_params(), 0..4),
    )
        .prop_map(|(mut table, agents, probes)| {
            table.insert(
                "agents".into(),
                toml::Value::Array(agents.into_iter().map(toml::Value::Table).collect()),
            );
            table.insert(
                "probes".into(),
                toml::Value::Table(
                    probes
                        .into_iter()
                        .map(|(name, p)| (name.to_string(), toml::Value::Table(p)))
                        .collect(),
                ),
            );
            toml::to_string(&table).unwrap_or_default().into_bytes()
        })
}

pub fn plans(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![grammar_plan(), mutated(seeds)]
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        select(VALUES).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            btree_map(select(KEYS), inner, 0..6).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A lease or deadline in ms: mostly plausible, sometimes out of range.
fn millis() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => (0u64..10_000_000).prop_map(serde_json::Value::from),
        1 => any::<u64>().prop_map(serde_json::Value::from),
        1 => any::<i64>().prop_map(serde_json::Value::from),
    ]
}

/// A job request whose probe is real (or not) and whose params are a
/// generated object, so parameter validation itself is exercised.
fn grammar_job() -> impl Strategy<Value = Vec<u8>> {
    let probe = prop_oneof![
        3 => select(&["inventory", "steal", "fsync", "rtt", "mtu", "services"][..]),
        1 => select(VALUES),
    ];
    (
        probe,
        btree_map(select(KEYS), json_value(), 0..8),
        proptest::option::of(millis()),
        proptest::option::of(millis()),
    )
        .prop_map(|(probe, params, lease, deadline)| {
            let params: serde_json::Map<String, serde_json::Value> = params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let mut job = serde_json::json!({ "probe": probe, "params": params });
            if let Some(lease) = lease {
                job["lease_ms"] = lease;
            }
            if let Some(deadline) = deadline {
                job["deadline_ms"] = deadline;
            }
            serde_json::to_vec(&job).unwrap_or_default()
        })
}

pub fn job_bodies(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![grammar_job(), mutated(seeds)]
}

/// A request head assembled from HTTP's parts: method, target, version,
/// headers (real names with hostile values, or arbitrary ones), line
/// endings and a body that may disagree with Content-Length.
fn grammar_head(addr: String, token: String) -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        select(&["GET", "POST", "DELETE", "PUT", "OPTIONS", "CONNECT", "get", ""][..])
            .prop_map(str::to_string),
        "[A-Z]{1,12}",
    ];
    let target = prop_oneof![
        select(
            &[
                "/v1/health",
                "/v1/jobs",
                "/v1/jobs/rtt-1",
                "/v1/targets",
                "/v1/inventory",
                "/metrics",
                "/v1/jobs/../health",
                "*",
                "http://evil/v1/jobs",
                "/v1/jobs?x=%00",
            ][..]
        )
        .prop_map(str::to_string),
        any::<String>(),
    ];
    let version = select(
        &[
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/2.0",
            "HTTP/1.1 x",
            "",
            "HTTP/9",
        ][..],
    );
    let header = prop_oneof![
        (
            select(
                &[
                    "Host",
                    "Authorization",
                    "Content-Type",
                    "Content-Length",
                    "Transfer-Encoding",
                    "Origin",
                    "Sec-Fetch-Site",
                    "Connection",
                    "Expect",
                ][..]
            )
            .prop_map(str::to_string),
            prop_oneof![select(VALUES).prop_map(str::to_string), any::<String>()],
        ),
        (any::<String>(), any::<String>()),
    ];
    (
        method,
        target,
        version,
        any::<bool>(),
        vec(header, 0..6),
        any::<bool>(),
        vec(any::<u8>(), 0..256),
        select(&["\r\n", "\n", "\r"][..]),
    )
        .prop_map(
            move |(method, target, version, authorized, headers, own_host, body, eol)| {
                let mut head = format!("{method} {target} {version}{eol}");
                if own_host {
                    head.push_str(&format!("Host: {addr}{eol}"));
                }
                if authorized {
                    head.push_str(&format!("Authorization: Bearer {token}{eol}"));
                }
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}{eol}"));
                }
                head.push_str(eol);
                let mut bytes = head.into_bytes();
                bytes.extend(body);
                bytes
            },
        )
}

pub fn http_heads(addr: &str, token: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = [
        format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"),
        format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{{\"probe\":\"inventory\"}}"
        ),
        format!(
            "DELETE /v1/jobs/rtt-1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ),
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    prop_oneof![
        grammar_head(addr.to_string(), token.to_string()),
        mutated(seeds)
    ]
}
