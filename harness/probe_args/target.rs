//! `--target NAME=ADDR:PORT[@PATH]`: a node's echo responder on a named path,
//! shared by the rtt and mtu probes.

use infraqual_probes::rtt::Target;

pub fn parse_target(s: &str) -> Result<Target, String> {
    let usage = || format!("`{s}`: expected NAME=ADDR:PORT[@PATH], e.g. b=198.19.2.1:7071@overlay");
    let (node, rest) = s.split_once('=').ok_or_else(usage)?;
    let (addr, path) = match rest.rsplit_once('@') {
        Some((a, p)) => (a, p.to_string()),
        None => (rest, "native".to_string()),
    };
    let socket: std::net::SocketAddr = addr.parse().map_err(|_| usage())?;
    if node.is_empty() || node.contains(['/', ' ']) || path.is_empty() || path.contains('/') {
        return Err(usage());
    }
    Ok(Target {
        node: node.to_string(),
        path,
        address: socket.ip(),
        port: socket.port(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_path() {
        let t = parse_target("b=198.19.2.1:7071@overlay").unwrap();
        assert_eq!(
            (t.node.as_str(), t.path.as_str(), t.port),
            ("b", "overlay", 7071)
        );
        assert_eq!(parse_target("b=127.0.0.1:9").unwrap().path, "native");
        assert!(parse_target("198.19.2.1:7071").is_err());
        assert!(parse_target("b=198.19.2.1").is_err());
    }
}
