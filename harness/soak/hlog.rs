//! The soak log: HdrHistogram's interval log format (`.hlog`, version 1.3,
//! as jHiccup and HdrHistogram's HistogramLogProcessor read it), one tagged
//! line per series per interval, plus one `#[infraqual interval {...}]`
//! comment per interval carrying the interval's facts (steal %, checks);
//! readers of the format skip comments. Each interval is appended with one
//! write and synced, so a crash loses at most the interval in progress; a
//! torn last line is cut off when the log is opened again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use infraqual_probes::LatencyHistogram;
use serde::{Deserialize, Serialize};

const FACTS_PREFIX: &str = "#[infraqual interval ";
/// HdrHistogram logs write the interval max in milliseconds for ns values.
const MAX_VALUE_UNIT_RATIO: f64 = 1e6;

/// What one interval measured besides its histograms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalFacts {
    /// Seconds since the log's StartTime (wall clock, re-anchored at restart).
    pub start: f64,
    /// Monotonic length of the interval, seconds.
    pub length: f64,
    /// Observed value of each judged check in this interval (`steal.pct`, ...).
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, f64>,
    /// Extra per-interval numbers for the timelines (`steal.throttled_pct`, ...).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
}

/// One interval read back: facts and the histogram of every series.
#[derive(Clone, Debug)]
pub struct Interval {
    pub facts: IntervalFacts,
    pub series: Vec<(String, LatencyHistogram)>,
}

/// The log as it stands on disk.
#[derive(Clone, Debug)]
pub struct LogContents {
    /// Seconds since the epoch.
    pub start_time: f64,
    pub intervals: Vec<Interval>,
}

impl LogContents {
    /// Monotonic seconds already measured (what a restart still owes).
    pub fn measured_seconds(&self) -> f64 {
        self.intervals.iter().map(|i| i.facts.length).sum()
    }

    /// Where the next interval starts on the log's time axis.
    pub fn end(&self) -> f64 {
        self.intervals
            .last()
            .map(|i| i.facts.start + i.facts.length)
            .unwrap_or(0.0)
    }
}

pub struct HlogWriter {
    path: PathBuf,
    file: File,
}

fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl HlogWriter {
    /// Opens `path` for appending, writing the header when it is new and
    /// cutting a torn last line off when it is not. Returns what the log
    /// already holds.
    pub fn open(path: &Path, now: SystemTime) -> Result<(Self, LogContents)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        if !text.is_empty() && !text.ends_with('\n') {
            let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
            file.set_len(keep as u64)
                .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
            text.truncate(keep);
        }
        let mut writer = HlogWriter {
            path: path.to_path_buf(),
            file,
        };
        if text.is_empty() {
            text = header(now);
            writer.append(&text)?;
        }
        let contents = parse(&text).with_context(|| format!("reading {}", path.display()))?;
        Ok((writer, contents))
    }

    fn append(&mut self, text: &str) -> Result<()> {
        self.file
            .seek(SeekFrom::End(0))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))
    }

    /// Appends one interval: its facts comment and a tagged line per series.
    pub fn write_interval(
        &mut self,
        facts: &IntervalFacts,
        series: &[(String, LatencyHistogram)],
    ) -> Result<()> {
        self.append(&interval_text(facts, series)?)
    }
}

/// A new log's header, its StartTime `now`.
pub fn header(now: SystemTime) -> String {
    let start = epoch_seconds(now);
    let stamp = infraqual_probes::timestamp::rfc3339_seconds(now);
    format!(
        "#[Histogram log format version 1.3]\n#[StartTime: {start:.3} (seconds since epoch), {stamp}]\n#[BaseTime: {start:.3} (seconds since epoch)]\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
    )
}

/// One interval as the log holds it: its facts comment and a tagged line
/// per series.
pub fn interval_text(
    facts: &IntervalFacts,
    series: &[(String, LatencyHistogram)],
) -> Result<String> {
    let mut text = format!(
        "{FACTS_PREFIX}{}]\n",
        serde_json::to_string(facts).context("encoding interval facts")?
    );
    for (tag, hist) in series {
        if tag.contains([',', ' ', '\n']) {
            bail!("hlog tag `{tag}` has a comma or whitespace");
        }
        text.push_str(&format!(
            "Tag={tag},{:.3},{:.3},{:.3},{}\n",
            facts.start,
            facts.length,
            hist.max() as f64 / MAX_VALUE_UNIT_RATIO,
            hist.to_base64().context("encoding an interval histogram")?
        ));
    }
    Ok(text)
}

/// How many intervals begin in a piece of a log.
pub fn intervals_in(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with(FACTS_PREFIX)).count()
}

/// Reads a log this module wrote (or one in the same format with facts).
pub fn read(path: &Path) -> Result<LogContents> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("reading {}", path.display()))
}

/// Parses a log's text (what `header` and `interval_text` wrote).
pub fn parse(text: &str) -> Result<LogContents> {
    let mut start_time = None;
    let mut intervals: Vec<Interval> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}", n + 1);
        if let Some(rest) = line.strip_prefix("#[StartTime: ") {
            let number = rest.split_whitespace().next().unwrap_or("");
            start_time = Some(number.parse::<f64>().with_context(at)?);
        } else if let Some(json) = line.strip_prefix(FACTS_PREFIX) {
            let json = json.strip_suffix(']').unwrap_or(json);
            let facts: IntervalFacts = serde_json::from_str(json).with_context(at)?;
            intervals.push(Interval {
                facts,
                series: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("Tag=") {
            let mut fields = rest.splitn(5, ',');
            let tag = fields.next().unwrap_or("").to_string();
            let payload = fields.nth(3).context("an interval line with four fields")?;
            let hist = LatencyHistogram::from_base64(payload).with_context(at)?;
            match intervals.last_mut() {
                Some(interval) => interval.series.push((tag, hist)),
                None => bail!("{}: an interval line before its facts", at()),
            }
        }
    }
    Ok(LogContents {
        start_time: start_time.context("no #[StartTime: ...] line")?,
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for v in values {
            h.record(*v);
        }
        h
    }

    #[test]
    fn intervals_round_trip_and_reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.hlog");
        let (mut w, before) = HlogWriter::open(&path, SystemTime::now()).unwrap();
        assert!(before.intervals.is_empty());
        let facts = IntervalFacts {
            start: 0.0,
            length: 5.0,
            ..Default::default()
        };
        w.write_interval(
            &facts,
            &[("fsync/fdatasync".into(), hist(&[1_000, 2_000_000]))],
        )
        .unwrap();
        drop(w);
        let (mut w, again) = HlogWriter::open(&path, SystemTime::now()).unwrap();
        assert_eq!(again.intervals.len(), 1);
        assert_eq!(again.start_time, before.start_time, "the header is kept");
        let second = IntervalFacts {
            start: again.end(),
            length: 5.0,
            ..Default::default()
        };
        w.write_interval(&second, &[("fsync/fdatasync".into(), hist(&[7]))])
            .unwrap();
        let log = read(&path).unwrap();
        assert_eq!(log.intervals.len(), 2);
        assert_eq!(log.intervals[0].series[0].1.len(), 2);
        assert_eq!(log.intervals[1].facts.start, 5.0);
        assert_eq!(log.measured_seconds(), 10.0);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_on_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.hlog");
        let (mut w, _) = HlogWriter::open(&path, SystemTime::now()).unwrap();
        let facts = IntervalFacts {
            length: 1.0,
            ..Default::default()
        };
        w.write_interval(&facts, &[("steal/hiccup".into(), hist(&[50_000]))])
            .unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"#[infraqual interval {\"start\":1.0,\"len")
            .unwrap();
        drop(f);
        let (_, log) = HlogWriter::open(&path, SystemTime::now()).unwrap();
        assert_eq!(log.intervals.len(), 1);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));
    }
}
