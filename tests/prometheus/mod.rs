//! A real Prometheus for the tests (Debian's `prometheus` and `promtool`,
//! installed by scripts/setup-system): started on loopback with a temporary
//! config and data directory, queried over its HTTP API.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::agents::http;

/// Installed by scripts/setup-system (Debian package `prometheus`).
pub fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`{name}` is missing: install Debian's prometheus package (scripts/setup-system)"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_string()
}

pub struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_prometheus(dir: &Path, agent_addr: &str, token_file: &Path) -> (Prometheus, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: infraqual\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{agent_addr}']\n",
            token_file.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    (Prometheus(child), addr)
}

/// The single value of an instant query, once Prometheus has one.
pub fn query_value(prom: &str, expr: &str, limit: Duration) -> f64 {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = query_at(prom, expr, None) {
            return v;
        }
        assert!(Instant::now() < until, "prometheus never answered {expr}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The single value of an instant query at `time` (seconds since the
/// epoch; now when None), if Prometheus answers one.
pub fn query_at(prom: &str, expr: &str, time: Option<f64>) -> Option<f64> {
    let mut path = format!("/api/v1/query?query={}", urlencode(expr));
    if let Some(t) = time {
        path.push_str(&format!("&time={t:.3}"));
    }
    std::net::TcpStream::connect(prom).ok()?;
    let (status, body) = http(prom, "GET", &path, None, b"");
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let sample = v["data"]["result"].as_array()?.first()?.clone();
    sample["value"][1].as_str()?.parse().ok()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool("promtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(input.as_bytes()).unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `(lower, upper]` bucket of an exposition's histogram (the `_bucket`
/// lines starting with `series`) that holds `value` (seconds), with
/// HdrHistogram's 0.1 % resolution allowed at its edges.
pub fn bucket_around(exposition: &str, series: &str, value: f64) -> (f64, f64) {
    let bounds: Vec<f64> = exposition
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
        .collect();
    assert!(
        !bounds.is_empty(),
        "no `{series}` buckets in the exposition"
    );
    let upper_index = bounds
        .iter()
        .position(|&b| value <= b * 1.001)
        .unwrap_or(bounds.len());
    let lower = if upper_index == 0 {
        0.0
    } else {
        bounds[upper_index - 1]
    };
    let upper = bounds.get(upper_index).copied().unwrap_or(f64::INFINITY);
    (lower, upper)
}
