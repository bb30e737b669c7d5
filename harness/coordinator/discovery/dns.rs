//! A small DNS client for A records, enough for Kubernetes headless Services:
//! one question over UDP (EDNS0, 4 KiB answers: a few hundred pods), TCP
//! when the answer is truncated anyway. No system resolver: the coordinator
//! asks the server the plan names or /etc/resolv.conf's first nameserver,
//! and applies resolv.conf's search list the way glibc does for short names.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const TYPE_OPT: u16 = 41;
const EDNS_PAYLOAD: u16 = 4096;
const RCODE_NXDOMAIN: u8 = 3;
const TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{name} does not resolve (NXDOMAIN from {server})")]
    NoSuchName { name: String, server: SocketAddr },
    #[error("DNS server {server}: {message} (asking for {name})")]
    Server {
        name: String,
        server: SocketAddr,
        message: String,
    },
    #[error("DNS server {server}: {source} (asking for {name})")]
    Io {
        name: String,
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("`{name}` is not a DNS name: {reason}")]
    BadName { name: String, reason: &'static str },
}

/// Where to ask and how to complete short names.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolver {
    pub server: SocketAddr,
    pub search: Vec<String>,
    pub ndots: usize,
}

impl Resolver {
    pub fn with_server(server: SocketAddr) -> Resolver {
        Resolver {
            server,
            search: Vec::new(),
            ndots: 1,
        }
    }

    /// The first nameserver, the search list and ndots of a resolv.conf.
    pub fn from_resolv_conf(text: &str) -> Option<Resolver> {
        let mut server = None;
        let mut search = Vec::new();
        let mut ndots = 1;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") if server.is_none() => {
                    server = words
                        .next()
                        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                        .map(|ip| SocketAddr::new(ip, 53));
                }
                Some("search" | "domain") => {
                    search = words.map(|w| w.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for option in words {
                        if let Some(n) = option.strip_prefix("ndots:") {
                            ndots = n.parse().unwrap_or(1).min(15);
                        }
                    }
                }
                _ => {}
            }
        }
        server.map(|server| Resolver {
            server,
            search,
            ndots,
        })
    }

    /// The names to try, in order, for `name` (glibc's rule: absolute first
    /// when it has at least ndots dots, search domains otherwise first).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }

    /// Every A record of `name` (after the search list), sorted. An empty
    /// list means the name exists but has no address.
    pub fn lookup_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let mut last = None;
        for candidate in self.candidates(name) {
            match query(self.server, &candidate) {
                Ok(mut addrs) => {
                    addrs.sort();
                    addrs.dedup();
                    return Ok(addrs);
                }
                Err(e @ DnsError::NoSuchName { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(DnsError::NoSuchName {
            name: name.to_string(),
            server: self.server,
        }))
    }
}

fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let bad = |reason| DnsError::BadName {
        name: name.to_string(),
        reason,
    };
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00]); // recursion desired
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional (OPT)
    if name.is_empty() || name.len() > 253 {
        return Err(bad("empty or longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("a label is empty or longer than 63 characters"));
        }
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&TYPE_A.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    // EDNS0: root name, OPT, our payload size, no extended flags, no data.
    msg.push(0);
    msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
    msg.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(msg)
}

enum Answer {
    Addresses(Vec<Ipv4Addr>),
    Truncated,
}

fn query(server: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
    let id = query_id();
    let msg = encode_query(id, name)?;
    let io = |source| DnsError::Io {
        name: name.to_string(),
        server,
        source,
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut buf = vec![0u8; usize::from(EDNS_PAYLOAD)];
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        socket.send(&msg).map_err(io)?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => match parse_answer(&buf[..n], id, name, server)? {
                    Some(Answer::Addresses(a)) => return Ok(a),
                    Some(Answer::Truncated) => return query_tcp(server, name, &msg, id),
                    // Not our reply (a late answer to an earlier attempt).
                    None => continue,
                },
                Err(e) => {
                    last_error = Some(e);
                    break;
                }
            }
        }
    }
    Err(io(
        last_error.unwrap_or_else(|| std::io::ErrorKind::TimedOut.into())
    ))
}

fn query_tcp(
    server: SocketAddr,
    name: &str,
    msg: &[u8],
    id: u16,
) -> Result<Vec<Ipv4Addr>, DnsError> {
    let io = |source| DnsError::Io {
        name: name.to_string(),
        server,
        source,
    };
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(io)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).map_err(io)?;
    match parse_answer(&reply, id, name, server)? {
        Some(Answer::Addresses(a)) => Ok(a),
        _ => Err(DnsError::Server {
            name: name.to_string(),
            server,
            message: "a malformed or truncated answer over TCP".into(),
        }),
    }
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

/// `None` for a reply that is not to this query.
fn parse_answer(
    msg: &[u8],
    id: u16,
    name: &str,
    server: SocketAddr,
) -> Result<Option<Answer>, DnsError> {
    let malformed = || DnsError::Server {
        name: name.to_string(),
        server,
        message: "a malformed answer".into(),
    };
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return Ok(None);
    }
    if msg[2] & 0x02 != 0 {
        return Ok(Some(Answer::Truncated));
    }
    match msg[3] & 0x0f {
        0 => {}
        RCODE_NXDOMAIN => {
            return Err(DnsError::NoSuchName {
                name: name.to_string(),
                server,
            })
        }
        rcode => {
            return Err(DnsError::Server {
                name: name.to_string(),
                server,
                message: match rcode {
                    2 => "server failure (SERVFAIL)".to_string(),
                    5 => "refused the question (REFUSED)".to_string(),
                    other => format!("answered with error code {other}"),
                },
            })
        }
    }
    let questions = u16::from_be_bytes([msg[4], msg[5]]);
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at).ok_or_else(malformed)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at).ok_or_else(malformed)?;
        let header = msg.get(at..at + 10).ok_or_else(malformed)?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let class = u16::from_be_bytes([header[2], header[3]]);
        let len = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let data = msg.get(at + 10..at + 10 + len).ok_or_else(malformed)?;
        // A CNAME chain's targets come as further records; only A counts.
        if rtype == TYPE_A && class == CLASS_IN && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Ok(Some(Answer::Addresses(addrs)))
}

/// The offset after a (possibly compressed) name.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2).filter(|&end| end <= msg.len()),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "192.0.2.53:53";

    fn reply(id: u16, rcode: u8, answers: &[[u8; 4]]) -> Vec<u8> {
        let mut m = encode_query(id, "agent.iq.test").unwrap();
        m.truncate(m.len() - 11); // drop the OPT record
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = answers.len() as u8;
        m[11] = 0;
        for a in answers {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            m.extend_from_slice(a);
        }
        m
    }

    #[test]
    fn answers_are_parsed_and_foreign_ids_ignored() {
        let server = SERVER.parse().unwrap();
        let m = reply(7, 0, &[[198, 19, 1, 1], [198, 19, 2, 1]]);
        match parse_answer(&m, 7, "x", server).unwrap() {
            Some(Answer::Addresses(a)) => {
                assert_eq!(
                    a,
                    vec![Ipv4Addr::new(198, 19, 1, 1), Ipv4Addr::new(198, 19, 2, 1)]
                )
            }
            _ => panic!("no addresses"),
        }
        assert!(parse_answer(&m, 8, "x", server).unwrap().is_none());
        let nx = reply(7, RCODE_NXDOMAIN, &[]);
        assert!(matches!(
            parse_answer(&nx, 7, "x", server),
            Err(DnsError::NoSuchName { .. })
        ));
        let short = &m[..m.len() - 2];
        assert!(parse_answer(short, 7, "x", server).is_err());
    }

    #[test]
    fn resolv_conf_search_list_follows_ndots() {
        let r = Resolver::from_resolv_conf(
            "search iq.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
        )
        .unwrap();
        assert_eq!(r.server, "10.96.0.10:53".parse().unwrap());
        assert_eq!(
            r.candidates("agent"),
            vec![
                "agent.iq.svc.cluster.local",
                "agent.svc.cluster.local",
                "agent"
            ]
        );
        assert_eq!(
            r.candidates("agent.iq.svc.cluster.local."),
            vec!["agent.iq.svc.cluster.local"]
        );
        assert!(Resolver::from_resolv_conf("search x\n").is_none());
    }

    #[test]
    fn bad_names_are_refused_before_asking() {
        assert!(matches!(
            encode_query(1, "a..b"),
            Err(DnsError::BadName { .. })
        ));
    }
}
