//! Headless Chromium driven over the DevTools protocol on a pipe
//! (--remote-debugging-pipe: commands on fd 3, replies and events on fd 4,
//! NUL-separated JSON), so no driver, port or extra crate is needed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Debian's package installs the wrapper script /usr/bin/chromium.
pub const BINARY: &str = "chromium";

pub struct Browser {
    child: Child,
    commands: File,
    incoming: Receiver<Value>,
    /// Events seen while waiting for replies.
    pub events: VecDeque<Value>,
    next_id: u64,
    session: Option<String>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints; O_CLOEXEC keeps our ends out
    // of the child, whose copies are made by dup2 in pre_exec.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by pipe2 and are owned by no one else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts headless Chromium with a fresh profile in `profile_dir`.
    pub fn launch(profile_dir: &Path) -> Browser {
        let (cmd_read, cmd_write) = pipe();
        let (evt_read, evt_write) = pipe();
        let (child_in, child_out) = {
            use std::os::fd::AsRawFd;
            (cmd_read.as_raw_fd(), evt_write.as_raw_fd())
        };
        let mut cmd = Command::new(BINARY);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and
        // exec. The pipe ends may themselves be fds 3 or 4, so both are first
        // copied above 10; dup2 then gives 3 and 4 without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let high_in = libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10);
                let high_out = libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10);
                if high_in < 0
                    || high_out < 0
                    || libc::dup2(high_in, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("{BINARY} does not start ({e}): scripts/setup-system installs it")
        });
        drop(cmd_read);
        drop(evt_write);
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(File::from(evt_read));
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(0, &mut buf) {
                if n == 0 {
                    break;
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            commands: File::from(cmd_write),
            incoming,
            events: VecDeque::new(),
            next_id: 1,
            session: None,
        }
    }

    /// Sends a command (to the attached page once there is one) and waits
    /// for its reply, keeping the events that arrive meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let v = self.recv(deadline, method);
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push_back(v);
        }
    }

    fn recv(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(v) => v,
            Err(e) => panic!("chromium: no answer to {waiting_for} ({e})"),
        }
    }

    /// Opens a page target and attaches to it; later calls go to the page.
    pub fn open_page(&mut self) {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = attached["sessionId"].as_str().map(str::to_string);
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(domain, json!({}));
        }
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// Navigates and waits for the load event.
    pub fn load(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        let deadline = Instant::now() + Duration::from_secs(60);
        if self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            return;
        }
        loop {
            let v = self.recv(deadline, "Page.loadEventFired");
            let done = v["method"] == "Page.loadEventFired";
            self.events.push_back(v);
            if done {
                return;
            }
        }
    }

    /// Console errors, uncaught exceptions and error log entries so far.
    pub fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.exceptionThrown" => Some(e["params"]["exceptionDetails"].to_string()),
                "Runtime.consoleAPICalled"
                    if matches!(e["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    Some(e["params"]["args"].to_string())
                }
                "Log.entryAdded" if e["params"]["entry"]["level"] == "error" => {
                    Some(e["params"]["entry"].to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// Evaluates an expression that returns a JSON string.
    pub fn eval_json(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        let text = r["result"]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("evaluate returned {r}"));
        serde_json::from_str(text).unwrap()
    }

    /// PNG of the top `max_height` CSS pixels of the page.
    pub fn screenshot(&mut self, max_height: f64) -> Vec<u8> {
        use base64::Engine as _;
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(1600.0)
            .min(max_height);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": 1280, "height": height, "scale": 1 }
            }),
        );
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session = None;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": "Browser.close", "params": {} });
        let mut bytes = serde_json::to_vec(&msg).unwrap_or_default();
        bytes.push(0);
        let _ = self.commands.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
