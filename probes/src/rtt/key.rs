//! The rtt probe's metric names, `<src>-><dst>/<path>/<kind>`, built and
//! read in this one place. They are run.json's keys, so their text is part
//! of the result contract: `Display` writes exactly what the probe has
//! always written, and `FromStr` is the only reader.

use std::fmt;
use std::str::FromStr;

use super::{Kind, Target};

/// Between source and target node in every rtt key.
const PAIR_SEPARATOR: &str = "->";

/// `<src>-><dst>`: a node pair (the `overlay_overhead_us` fact's keys).
pub fn pair_key(source: &str, target: &str) -> String {
    format!("{source}{PAIR_SEPARATOR}{target}")
}

/// `<src>-><dst>/<path>`: a node pair over one path (the `loss` fact's
/// keys, warnings).
pub fn path_key(source: &str, target: &str, path: &str) -> String {
    format!("{}/{path}", pair_key(source, target))
}

/// Why a text is not an rtt metric key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` is not an rtt metric key (<src>-><dst>/<path>/<kind>): {reason}")]
pub struct RttKeyError {
    pub key: String,
    pub reason: &'static str,
}

/// One rtt measurement's name: from `source` to `target` over `path`, by
/// `kind`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RttMetricKey {
    pub source: String,
    pub target: String,
    pub path: String,
    pub kind: Kind,
}

impl RttMetricKey {
    pub fn new(source: &str, target: &Target, kind: Kind) -> Self {
        RttMetricKey {
            source: source.to_string(),
            target: target.node.clone(),
            path: target.path.clone(),
            kind,
        }
    }

    /// `<src>-><dst>`
    pub fn pair(&self) -> String {
        pair_key(&self.source, &self.target)
    }

    /// `<src>-><dst>/<path>`
    pub fn path_key(&self) -> String {
        path_key(&self.source, &self.target, &self.path)
    }
}

impl fmt::Display for RttMetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.path_key(), self.kind.as_str())
    }
}

impl FromStr for RttMetricKey {
    type Err = RttKeyError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let fail = |reason| RttKeyError {
            key: key.to_string(),
            reason,
        };
        let mut parts = key.split('/');
        let (Some(pair), Some(path), Some(kind), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("not three `/`-separated parts"));
        };
        let Some((source, target)) = pair.split_once(PAIR_SEPARATOR) else {
            return Err(fail("no `->` between source and target"));
        };
        if source.is_empty() || target.is_empty() || target.contains(PAIR_SEPARATOR) {
            return Err(fail("source and target must be one non-empty name each"));
        }
        if path.is_empty() {
            return Err(fail("empty path"));
        }
        Ok(RttMetricKey {
            source: source.to_string(),
            target: target.to_string(),
            path: path.to_string(),
            kind: kind.parse().map_err(|_| fail("unknown kind"))?,
        })
    }
}

/// A kind's name is not `udp`, `tcp_rr` or `tcp_connect`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an rtt kind (udp, tcp_rr, tcp_connect)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_string()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, target: &str, path: &str, kind: Kind) -> RttMetricKey {
        RttMetricKey {
            source: source.into(),
            target: target.into(),
            path: path.into(),
            kind,
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_text() {
        for kind in Kind::ALL {
            let k = key("oslo-1", "frankfurt-1", "overlay", kind);
            let text = k.to_string();
            assert_eq!(
                text,
                format!("oslo-1->frankfurt-1/overlay/{}", kind.as_str())
            );
            assert_eq!(text.parse::<RttMetricKey>(), Ok(k));
        }
    }

    #[test]
    fn the_probe_builds_the_contract_text() {
        let target = Target {
            node: "b".into(),
            path: "native".into(),
            address: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 7,
        };
        let k = RttMetricKey::new("a", &target, Kind::TcpRr);
        assert_eq!(k.to_string(), "a->b/native/tcp_rr");
        assert_eq!(k.path_key(), "a->b/native");
        assert_eq!(k.path_key(), target.key("a"));
        assert_eq!(k.pair(), "a->b");
    }

    #[test]
    fn node_names_may_hold_dashes_and_dots() {
        let k: RttMetricKey = "node-1.eu->node-2.eu/native/udp".parse().unwrap();
        assert_eq!(k, key("node-1.eu", "node-2.eu", "native", Kind::Udp));
    }

    #[test]
    fn texts_that_are_not_rtt_keys_are_refused() {
        for bad in [
            "",
            "fdatasync",
            "a->b/native",
            "a->b/native/udp/extra",
            "a-b/native/udp",
            "->b/native/udp",
            "a->/native/udp",
            "a->b->c/native/udp",
            "a->b//udp",
            "a->b/native/icmp",
            "nftables/1000/end",
        ] {
            let err = bad.parse::<RttMetricKey>().unwrap_err();
            assert_eq!(err.key, bad);
        }
    }

    #[test]
    fn kinds_parse_from_their_names_only() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!("UDP".parse::<Kind>().is_err());
    }
}
