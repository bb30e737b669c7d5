//! Real agent processes on 127.0.0.1 ephemeral ports, driven over real
//! sockets by raw HTTP and by the real coordinator (`infraqual run`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `infraqual agent`; killed and reaped on drop.
pub struct Agent {
    pub child: Child,
    pub addr: String,
    pub token: String,
    /// The agent's stderr (access and audit lines, warnings): a file, so a
    /// chatty agent never blocks on a full pipe.
    pub log: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> Agent {
        let token = random_token();
        let token_file = dir.join(format!("{name}.token"));
        write_private(&token_file, &token);
        let ready = dir.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&ready);
        let log = dir.join(format!("{name}.stderr"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_infraqual"))
            .args([
                "agent",
                "--listen",
                "127.0.0.1:0",
                "--node",
                name,
                "--token-file",
            ])
            .arg(&token_file)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("agent starts");
        let addr = wait_for_file(&ready, Duration::from_secs(20));
        Agent {
            child,
            addr,
            token,
            log,
        }
    }

    /// What the agent wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 128 random bits in hex, as `openssl rand -hex 16` makes them.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file only its owner can read, as the agent wants its token files.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Polls job `id` until it is no longer running; returns its last status.
pub fn wait_job(a: &Agent, id: &str) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http(
            &a.addr,
            "GET",
            &format!("/v1/jobs/{id}"),
            Some(&a.token),
            b"",
        );
        assert_eq!(code, 200, "{body}");
        if !body.contains("\"state\":\"running\"") {
            return body;
        }
        assert!(Instant::now() < until, "job {id} never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn wait_for_file(path: &Path, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(Instant::now() < until, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One raw HTTP/1.1 request; returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The agent may answer 413 before reading a large body; ignore EPIPE.
    let _ = s.write_all(body);
    read_response(&mut s)
}

/// Reads a whole response (the request said `Connection: close`); returns
/// (status, body).
pub fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub struct PlanAgent<'a> {
    pub name: &'a str,
    pub url: String,
    pub token: String,
}

/// Writes plan.toml (and token files) into `dir`.
pub fn write_plan(dir: &Path, agents: &[PlanAgent], probes: &str, extra: &str) -> PathBuf {
    let mut text = format!("name = \"test\"\nout = \"runs\"\n{extra}\n");
    for a in agents {
        let tf = format!("plan-{}.token", a.name);
        std::fs::write(dir.join(&tf), &a.token).unwrap();
        text.push_str(&format!(
            "[[agents]]\nname = \"{}\"\nurl = \"{}\"\ntoken_file = \"{tf}\"\nlabels = {{ region = \"lab\" }}\n",
            a.name, a.url
        ));
    }
    text.push_str(probes);
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn run_json(dir: &Path) -> serde_json::Value {
    let runs = dir.join("runs");
    let bundle = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !p.ends_with("baselines"))
        .expect("a bundle");
    serde_json::from_str(&std::fs::read_to_string(bundle.join("run.json")).unwrap()).unwrap()
}

pub fn node<'a>(run: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("node {name} in run.json"))
}
