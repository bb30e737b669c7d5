//! The `[discover]` section of a plan (docs/plan-files.md): the headless
//! Services to resolve, the port and network path of each, and what every
//! found agent shares (token, CA, DNS server).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use toml::Spanned;

use super::dns::Resolver;
use crate::coordinator::plan::{existing_file, read_token, Locator, PlanError};

const RESOLV_CONF: &str = "/etc/resolv.conf";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverEntry {
    services: Vec<Spanned<ServiceEntry>>,
    #[serde(default)]
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    dns_server: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: Spanned<String>,
    port: Spanned<i64>,
    path: Spanned<String>,
}

/// Where in the plan a value was written, for errors found later (a name
/// that does not resolve is known only when the run starts).
#[derive(Clone, Debug)]
pub struct PlanSpot {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl PlanSpot {
    fn new(loc: &Locator, span: Range<usize>) -> PlanSpot {
        let e = loc.at(span, "");
        PlanSpot {
            file: e.file,
            line: e.line,
            column: e.column,
        }
    }

    pub fn error(&self, message: impl Into<String>) -> PlanError {
        PlanError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DiscoverService {
    pub name: String,
    pub port: u16,
    pub path: String,
    pub at: PlanSpot,
}

#[derive(Clone, Debug)]
pub struct DiscoverPlan {
    pub services: Vec<DiscoverService>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub resolver: Resolver,
    /// Where `dns_server` was written, or the section when resolv.conf gave it.
    pub resolver_at: PlanSpot,
}

impl DiscoverPlan {
    pub(in crate::coordinator) fn parse(
        entry: &Spanned<DiscoverEntry>,
        loc: &Locator,
        base: &Path,
    ) -> Result<DiscoverPlan, PlanError> {
        let d = entry.get_ref();
        if d.services.is_empty() {
            return Err(loc.at(
                entry.span(),
                "[discover] needs at least one [[discover.services]] entry",
            ));
        }
        let mut services: Vec<DiscoverService> = Vec::new();
        for s in &d.services {
            let s = s.get_ref();
            let name = s.name.get_ref().trim().to_string();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(loc.at(
                    s.name.span(),
                    "a DNS name, e.g. agent.infraqual.svc.cluster.local",
                ));
            }
            let port = u16::try_from(*s.port.get_ref())
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| loc.at(s.port.span(), "port must be 1 .. 65535"))?;
            let path = s.path.get_ref().trim().to_string();
            if path.is_empty() || path.contains(['/', ' ']) {
                return Err(loc.at(
                    s.path.span(),
                    "path names are one word, e.g. native or overlay",
                ));
            }
            if services.iter().any(|x| x.path == path) {
                return Err(loc.at(
                    s.path.span(),
                    format!("path `{path}` is discovered twice: one service per path"),
                ));
            }
            services.push(DiscoverService {
                name,
                port,
                path,
                at: PlanSpot::new(loc, s.name.span()),
            });
        }
        let token = d
            .token_file
            .as_ref()
            .map(|tf| read_token(loc, base, tf))
            .transpose()?;
        let ca_file = d
            .ca_file
            .as_ref()
            .map(|ca| existing_file(loc, base, ca))
            .transpose()?;
        let (resolver, resolver_at) = match &d.dns_server {
            Some(server) => {
                let text = server.get_ref();
                let addr = text
                    .parse::<SocketAddr>()
                    .or_else(|_| {
                        text.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| loc.at(server.span(), format!("`{text}` is not IP or IP:PORT")))?;
                (
                    Resolver::with_server(addr),
                    PlanSpot::new(loc, server.span()),
                )
            }
            None => {
                let at = PlanSpot::new(loc, entry.span());
                let text = std::fs::read_to_string(RESOLV_CONF).map_err(|e| {
                    at.error(format!("[discover] without dns_server: {RESOLV_CONF}: {e}"))
                })?;
                let resolver = Resolver::from_resolv_conf(&text).ok_or_else(|| {
                    at.error(format!(
                        "[discover] without dns_server: {RESOLV_CONF} names no nameserver"
                    ))
                })?;
                (resolver, at)
            }
        };
        Ok(DiscoverPlan {
            services,
            token,
            ca_file,
            resolver,
            resolver_at,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn as_json(&self) -> Value {
        json!({
            "dns_server": self.resolver.server.to_string(),
            "services": self.services.iter().map(|s| json!({
                "name": s.name, "port": s.port, "path": s.path,
            })).collect::<Vec<_>>(),
        })
    }
}
