//! etcd's own request time, the part of a put that is neither a disk sync
//! nor a network delay: the gateway decoding the request, the proposal
//! through Raft, the append and its acknowledgement passing between the
//! members' processes, the leader's second Ready cycle that learns the
//! commit, the apply to the key-value store and the reply. It is measured,
//! not assumed: put latencies of an etcd cluster of the same size with its
//! data directories on tmpfs (fdatasync costs microseconds there), the
//! client beside the leader. scripts/bench-etcd-cluster places that cluster
//! as the real one, a member on each node, takes turns with the real
//! cluster's puts so both see the machine alike, and takes the quorum's
//! round trip back out of each put (the model adds its own draw of it): a
//! member 26 ms away cost each put 0.5 ms of the machine's CPU in the lab
//! that a cluster on loopback never showed. A single member would miss the
//! messages and the second Ready cycle (its entries commit as they are
//! appended). The model adds one draw of it to every commit.

use std::path::{Path, PathBuf};

use infraqual_probes::LatencyHistogram;
use serde::Serialize;

/// Fewer puts than this make the p99 of the term rest on a handful of values.
pub const MIN_PUTS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum RequestTimeError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: `{text}` is not a put latency in nanoseconds")]
    NotANumber {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path}: {count} put latencies; at least {MIN_PUTS} are needed")]
    TooFew { path: PathBuf, count: u64 },
}

/// The measured request time and where it came from.
#[derive(Clone, Debug)]
pub struct RequestTime {
    pub hist: LatencyHistogram,
    pub source: String,
}

/// What the prediction says about the term it added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestTimeSummary {
    pub source: String,
    pub puts: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

impl RequestTime {
    /// One put latency in nanoseconds per line; blank lines and `#`
    /// comments are skipped. The first non-empty comment, if any, says how the
    /// latencies were measured and becomes the source: only the file
    /// knows (the bench places its tmpfs cluster as the real one).
    pub fn read(path: &Path) -> Result<Self, RequestTimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RequestTimeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, RequestTimeError> {
        let mut hist = LatencyHistogram::new();
        let mut described_as = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim();
                if described_as.is_none() && !comment.is_empty() {
                    described_as = Some(comment.to_string());
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let ns: u64 = line.parse().map_err(|_| RequestTimeError::NotANumber {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.chars().take(40).collect(),
            })?;
            hist.record(ns);
        }
        if hist.len() < MIN_PUTS {
            return Err(RequestTimeError::TooFew {
                path: path.to_path_buf(),
                count: hist.len(),
            });
        }
        let source = match described_as {
            Some(description) => format!("{description}, from {}", path.display()),
            None => format!("put latencies from {}", path.display()),
        };
        Ok(RequestTime { hist, source })
    }

    pub fn summary(&self) -> RequestTimeSummary {
        RequestTimeSummary {
            source: self.source.clone(),
            puts: self.hist.len(),
            p50_ns: self.hist.value_at_quantile(0.5),
            p99_ns: self.hist.value_at_quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_latency_per_line_with_comments() {
        let mut text = String::from("# puts on tmpfs\n\n");
        for i in 0..200u64 {
            text.push_str(&format!("{}\n", 1_000_000 + i));
        }
        let t = RequestTime::parse(&text, Path::new("rt.txt")).unwrap();
        let s = t.summary();
        assert_eq!(s.puts, 200);
        assert!((1_000_000..1_001_000).contains(&s.p50_ns), "{}", s.p50_ns);
        assert_eq!(s.source, "puts on tmpfs, from rt.txt");
    }

    #[test]
    fn without_a_comment_the_source_is_the_file_alone() {
        let text: String = (0..100).map(|i| format!("{}\n", 900_000 + i)).collect();
        let t = RequestTime::parse(&text, Path::new("rt.txt")).unwrap();
        assert_eq!(t.summary().source, "put latencies from rt.txt");
    }

    #[test]
    fn bad_lines_and_too_few_puts_name_the_file() {
        let e = RequestTime::parse("100\nfast\n", Path::new("rt.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rt.txt, line 2: `fast` is not a put latency in nanoseconds"
        );
        let e = RequestTime::parse("100\n200\n", Path::new("rt.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rt.txt: 2 put latencies; at least 100 are needed"
        );
    }
}
