//! The delay line between a region and the WAN hub (this kernel has no
//! netem): a process attached to two TUN devices in two namespaces that
//! holds every packet for the one-way delay before passing it on, in both
//! directions. With a rate it is also a link of that speed: each packet
//! leaves when the ones before it have been serialised, and a packet that
//! would wait longer than the queue's time is dropped (a router's buffer). Started by `lab up` as a hidden subcommand; killed by
//! `lab down` (the devices belong to the namespaces and go with them).

// The TUNSETIFF ioctl has no std wrapper.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use infraqual_probes::system::netns;
use infraqual_probes::units::HumanDuration;

use crate::exit::Outcome;

#[derive(Args, Debug, Clone)]
pub struct DelayLineArgs {
    /// Namespace of the first TUN device.
    #[arg(long)]
    pub a_netns: String,
    #[arg(long)]
    pub a_dev: String,
    /// Namespace of the second TUN device.
    #[arg(long)]
    pub b_netns: String,
    #[arg(long)]
    pub b_dev: String,
    /// Held in each direction.
    #[arg(long)]
    pub delay: HumanDuration,
    /// Written once both devices are attached.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Packets queued per direction before tail drop (a router's buffer).
    #[arg(long, default_value_t = 4096)]
    pub queue_limit: usize,
    /// Link rate in bits per second, each direction (IP packet bytes).
    #[arg(long)]
    pub rate_bps: Option<u64>,
    /// With a rate: the longest a packet may queue for the link before tail drop.
    #[arg(long, default_value = "50ms")]
    pub queue_time: HumanDuration,
}

/// Slowest and fastest link a lab region may have.
pub const MIN_RATE_BPS: u64 = 1_000_000;
pub const MAX_RATE_BPS: u64 = 100_000_000_000;

/// `200mbit`, `1gbit`, `500kbit` (decimal, as links are sold) to bits/s.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || format!("`{text}`: expected a link rate like 200mbit, 1gbit or 500kbit");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(bad()),
    };
    let bps = (value * scale).round();
    if !(MIN_RATE_BPS as f64..=MAX_RATE_BPS as f64).contains(&bps) {
        return Err(format!("`{text}`: give a rate from 1mbit to 100gbit"));
    }
    Ok(bps as u64)
}

/// The shortest text `parse_rate` reads back as `bps`.
pub fn rate_text(bps: u64) -> String {
    for (scale, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bps % scale == 0 {
            return format!("{}{unit}", bps / scale);
        }
    }
    format!("{}kbit", bps as f64 / 1e3)
}

/// A link of fixed rate: when the packet now arriving can start to leave.
struct Link {
    ns_per_byte: f64,
    max_wait: Duration,
    free_at: Instant,
}

impl Link {
    /// When a packet of `len` bytes arriving `now` has been serialised, or
    /// None when it would queue longer than the buffer holds.
    fn departure(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let start = self.free_at.max(now);
        if start.duration_since(now) > self.max_wait {
            return None;
        }
        self.free_at = start + Duration::from_nanos((len as f64 * self.ns_per_byte) as u64);
        Some(self.free_at)
    }
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const MAX_PACKET: usize = 65_536;

/// Attaches to the existing (persistent) TUN device `dev` of the calling
/// thread's network namespace.
fn attach(dev: &str) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun")?;
    // SAFETY: all-zero ifreq is valid; the name fits (checked).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if dev.len() >= req.ifr_name.len() {
        bail!("TUN device name {dev} is too long");
    }
    for (d, s) in req.ifr_name.iter_mut().zip(dev.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: TUNSETIFF on a /dev/net/tun fd with a valid ifreq.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("attaching to TUN {dev}"));
    }
    Ok(file)
}

struct Queue {
    packets: Mutex<VecDeque<(Instant, Vec<u8>)>>,
    ready: Condvar,
}

pub fn run(args: &DelayLineArgs) -> Result<Outcome> {
    netns::enter(&args.a_netns)?;
    let a = attach(&args.a_dev)?;
    netns::enter(&args.b_netns)?;
    let b = attach(&args.b_dev)?;
    let delay = args.delay.0;
    let limit = args.queue_limit.max(1);
    if let Some(bps) = args.rate_bps {
        if !(MIN_RATE_BPS..=MAX_RATE_BPS).contains(&bps) {
            bail!("--rate-bps {bps}: give {MIN_RATE_BPS}..={MAX_RATE_BPS}");
        }
    }
    let link = |bps: u64| Link {
        ns_per_byte: 8e9 / bps as f64,
        max_wait: args.queue_time.0,
        free_at: Instant::now(),
    };
    let mut threads = Vec::new();
    for (from, to, name) in [(a.try_clone()?, b.try_clone()?, "a->b"), (b, a, "b->a")] {
        let queue = Arc::new(Queue {
            packets: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        let q = Arc::clone(&queue);
        let link = args.rate_bps.map(link);
        threads.push(
            std::thread::Builder::new()
                .name(format!("delay-in-{name}"))
                .spawn(move || receive(from, &q, delay, limit, link))?,
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("delay-out-{name}"))
                .spawn(move || release(to, &queue))?,
        );
    }
    if let Some(path) = &args.ready_file {
        infraqual_reports::atomic::write(path, b"ready\n")
            .with_context(|| format!("--ready-file {}", path.display()))?;
    }
    // Runs until killed (SIGTERM from `lab down`); a thread ending means a
    // device went away (its namespace was deleted): stop.
    while threads.iter().all(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Outcome::Pass)
}

/// Real-time priority for a delay-line thread: a wire does not wait for a
/// CPU. Measured on the 26 ms lab path with four busy loops on two cores
/// (rtt p50 with the measuring ends already exact): 28.2 to 29.0 ms with
/// the delay lines at normal priority, 26.6 to 26.7 ms with SCHED_FIFO.
/// The threads block in read and in a condvar wait, so they only take the
/// CPU to move a packet. Without the privilege the line runs as before.
fn wire_priority() {
    let param = libc::sched_param { sched_priority: 50 };
    // SAFETY: pthread_self is the calling thread; param is a valid struct.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc != 0 {
        eprintln!(
            "delay line: no real-time priority ({}): delays may run long on a busy machine",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

fn receive(mut from: File, queue: &Queue, delay: Duration, limit: usize, mut link: Option<Link>) {
    wire_priority();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let now = Instant::now();
        let due = match link.as_mut().map(|l| l.departure(now, n)) {
            None => now + delay,
            Some(Some(sent)) => sent + delay,
            Some(None) => continue,
        };
        let mut q = queue.packets.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < limit {
            q.push_back((due, buf[..n].to_vec()));
            queue.ready.notify_one();
        }
    }
}

/// Constant delay (and a link's departures, which only grow) keeps the queue in due order: wait for the head's time,
/// write it, repeat.
fn release(mut to: File, queue: &Queue) {
    wire_priority();
    let mut q = queue.packets.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let Some(&(due, _)) = q.front() else {
            q = queue.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let now = Instant::now();
        if due > now {
            q = queue
                .ready
                .wait_timeout(q, due - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        let Some((_, packet)) = q.pop_front() else {
            continue;
        };
        drop(q);
        // A write error (no route, device down) drops the packet, like a link.
        let _ = to.write(&packet);
        q = queue.packets.lock().unwrap_or_else(|p| p.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_decimal_link_units_and_print_back() {
        assert_eq!(parse_rate("200mbit"), Ok(200_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(
            parse_rate("500kbit"),
            Err("`500kbit`: give a rate from 1mbit to 100gbit".into())
        );
        for bad in ["200", "mbit", "200mb", "1e3mbit", "-5mbit", "200tbit"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        for bps in [200_000_000, 1_500_000_000, 2_000_000_000, 1_234_000] {
            assert_eq!(parse_rate(&rate_text(bps)), Ok(bps));
        }
    }

    #[test]
    fn a_link_spaces_packets_by_their_size_and_drops_past_its_buffer() {
        let now = Instant::now();
        let mut link = Link {
            ns_per_byte: 8e9 / 100_000_000.0,
            max_wait: Duration::from_micros(300),
            free_at: now,
        };
        // 1250 bytes at 100 Mbit/s take 100 µs on the wire.
        let first = link.departure(now, 1250).unwrap();
        assert_eq!(first - now, Duration::from_micros(100));
        let second = link.departure(now, 1250).unwrap();
        assert_eq!(second - now, Duration::from_micros(200));
        link.departure(now, 1250).unwrap();
        link.departure(now, 1250).unwrap();
        assert!(link.departure(now, 1250).is_none(), "waits 400 µs > 300 µs");
        let later = now + Duration::from_millis(10);
        assert_eq!(
            link.departure(later, 125).unwrap() - later,
            Duration::from_micros(10)
        );
    }
}
