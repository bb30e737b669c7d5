use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use infraqual_probes::fsync::{self, Mode, Params};
use infraqual_probes::units::{ByteSize, HumanDuration, WallTime};
use infraqual_probes::ProbeName;
use serde_json::Value;

use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct FsyncArgs {
    /// Directory on the disk to qualify (the probe writes only in a fresh
    /// subdirectory of it and removes it on every exit path).
    #[arg(long, value_name = "PATH")]
    pub dir: PathBuf,
    /// Bytes to write in total (fio's --size).
    #[arg(long, value_name = "SIZE", default_value_t = fsync::DEFAULT_SIZE)]
    pub size: ByteSize,
    /// Bytes per write or WAL entry (fio's --bs).
    #[arg(long, value_name = "BYTES", default_value_t = fsync::DEFAULT_BLOCK_SIZE)]
    pub block_size: ByteSize,
    /// fio-etcd: fdatasync after every write, as the fio recipe; etcd-wal:
    /// preallocated 64 MB segments, batched aligned flushes, one sync per batch.
    #[arg(long, value_enum, default_value_t = ModeArg::from(Mode::default()))]
    pub mode: ModeArg,
    /// Syncs per second on a steady schedule (e.g. 200 or 200/s); default back to back.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Stop after this long even if --size is not written yet.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<HumanDuration>,
    /// Measure on tmpfs/ramfs or a RAM disk anyway (proves nothing about a disk).
    #[arg(long)]
    pub allow_volatile: bool,
    /// etcd-wal: entries per fdatasync.
    #[arg(long, value_name = "N", default_value_t = fsync::DEFAULT_ENTRIES_PER_SYNC)]
    pub entries_per_sync: u32,
    /// etcd-wal: bytes per preallocated segment.
    #[arg(long, value_name = "SIZE", default_value_t = ByteSize(fsync::ETCD_SEGMENT_BYTES))]
    pub segment_size: ByteSize,
    /// etcd-wal: afterwards run fio's etcd recipe on the same directory and
    /// record it beside the judged figure (the community reference, not judged).
    #[arg(long)]
    pub fio_reference: bool,
    /// etcd-wal: how often etcd's backend commits the applied puts, with two
    /// fdatasyncs on the same disk (etcd's --backend-batch-interval; default
    /// etcd's 100ms, 0 turns it off).
    #[arg(long, value_name = "DURATION")]
    pub backend_interval: Option<HumanDuration>,
    /// etcd-wal: the puts of one client in turn (etcd's `benchmark put
    /// --clients 1`): each is written once the previous one is applied, so a
    /// put stalled behind a backend commit holds up the next; --rate caps the
    /// pace. Default: an open schedule, as many clients give.
    #[arg(long)]
    pub sequential: bool,
    /// With --rate: the wall-clock time (RFC 3339, e.g.
    /// 2026-12-02T09:00:00.5Z) the first sync is due, so probes given the
    /// same time and rate sync in phase, as an etcd cluster's members do.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<WallTime>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    FioEtcd,
    EtcdWal,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::FioEtcd => Mode::FioEtcd,
            ModeArg::EtcdWal => Mode::EtcdWal,
        }
    }
}

impl From<Mode> for ModeArg {
    fn from(m: Mode) -> ModeArg {
        match m {
            Mode::FioEtcd => ModeArg::FioEtcd,
            Mode::EtcdWal => ModeArg::EtcdWal,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let number = s.trim().trim_end_matches("/s");
    number
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("invalid rate `{s}` (expected syncs per second, e.g. 200 or 200/s)"))
}

impl ProbeArgs for FsyncArgs {
    const PROBE: ProbeName = infraqual_probes::fsync::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        let params = Params {
            dir: self.dir.clone(),
            size: self.size,
            block_size: self.block_size,
            mode: self.mode.into(),
            rate: self.rate,
            duration: self.duration,
            allow_volatile: self.allow_volatile,
            entries_per_sync: self.entries_per_sync,
            segment_size: self.segment_size,
            fio_reference: self.fio_reference,
            backend_interval: self.backend_interval,
            sequential: self.sequential,
            start_at: self.start_at,
        };
        serde_json::to_value(params).context("fsync parameters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_accepts_a_number_with_or_without_per_second() {
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert_eq!(parse_rate("2.5/s"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
