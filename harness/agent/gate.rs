//! What a request must look like before any route sees it: a Host the
//! agent answers to (so DNS rebinding cannot aim a browser at it), no
//! browser fingerprints on job routes, and JSON bodies only.

use hyper::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};

/// Why a request is turned away before routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No Host header or one this agent does not answer to.
    Host(String),
    /// Sent by a web page (Origin or Sec-Fetch-* headers).
    Browser(&'static str),
    /// A job body that is not declared JSON.
    ContentType(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(h) => write!(
                f,
                "Host {h:?} is not an address of this agent nor a name it was given with --allow-host"
            ),
            Refusal::Browser(header) => write!(
                f,
                "browser-style request refused ({header} header): job routes are for the coordinator"
            ),
            Refusal::ContentType(t) => {
                write!(f, "Content-Type {t:?} refused: send application/json")
            }
        }
    }
}

/// Accepts an IP literal (a browser that reached it by IP sends the IP, so
/// no name was rebound), `localhost`, or a name the operator allowed.
pub fn check_host(headers: &HeaderMap, allowed_names: &[String]) -> Result<(), Refusal> {
    let Some(raw) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return Err(Refusal::Host(String::new()));
    };
    let name = host_name(raw);
    let ok = name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed_names.iter().any(|n| n.eq_ignore_ascii_case(name));
    if ok {
        Ok(())
    } else {
        Err(Refusal::Host(raw.chars().take(100).collect()))
    }
}

/// The host part of a Host header: `[::1]:70` -> `::1`, `a:70` -> `a`.
fn host_name(raw: &str) -> &str {
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match raw.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => raw,
    }
}

/// Job routes are refused to anything a web page can send.
pub fn check_not_browser(headers: &HeaderMap) -> Result<(), Refusal> {
    if headers.contains_key(ORIGIN) {
        return Err(Refusal::Browser("Origin"));
    }
    for header in ["sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest"] {
        if headers.contains_key(header) {
            return Err(Refusal::Browser("Sec-Fetch"));
        }
    }
    Ok(())
}

/// A job body must be declared JSON (a cross-origin form or text/plain
/// POST needs no preflight; application/json does).
pub fn check_json(headers: &HeaderMap) -> Result<(), Refusal> {
    let declared = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = declared.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Refusal::ContentType(declared.chars().take(100).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn host_accepts_addresses_localhost_and_allowed_names_only() {
        let allowed = vec!["node-1.example".to_string()];
        for ok in [
            "127.0.0.1:7070",
            "10.0.0.5",
            "[::1]:7070",
            "localhost:7070",
            "NODE-1.example:7070",
        ] {
            assert_eq!(
                check_host(&headers(&[("host", ok)]), &allowed),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:7070",
            "127.0.0.1.evil.example",
        ] {
            assert!(
                check_host(&headers(&[("host", bad)]), &allowed).is_err(),
                "{bad}"
            );
        }
        assert!(check_host(&HeaderMap::new(), &allowed).is_err());
    }

    #[test]
    fn browser_headers_and_non_json_bodies_are_refused() {
        assert!(check_not_browser(&headers(&[("origin", "http://evil")])).is_err());
        assert!(check_not_browser(&headers(&[("sec-fetch-mode", "no-cors")])).is_err());
        assert_eq!(check_not_browser(&HeaderMap::new()), Ok(()));
        assert!(check_json(&headers(&[("content-type", "text/plain")])).is_err());
        assert!(check_json(&HeaderMap::new()).is_err());
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(check_json(&json), Ok(()));
    }
}
