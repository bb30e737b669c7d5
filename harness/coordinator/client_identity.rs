//! A plan agent's `client_cert` and `client_key`: the certificate the
//! coordinator shows agents that check client certificates. Both files are
//! loaded while the plan is parsed, so a bad one stops the run before
//! anything is asked of an agent, naming the key.

use std::path::Path;

use toml::Spanned;

use super::plan::{existing_file, Locator, PlanError};
use crate::agent::ClientIdentity;

pub(super) fn parse(
    loc: &Locator,
    base: &Path,
    ca_file: Option<&Path>,
    cert: Option<&Spanned<String>>,
    key: Option<&Spanned<String>>,
) -> Result<Option<ClientIdentity>, PlanError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            return Err(loc.at(cert.span(), "client_cert needs client_key beside it"))
        }
        (None, Some(key)) => {
            return Err(loc.at(key.span(), "client_key needs client_cert beside it"))
        }
    };
    let Some(ca_file) = ca_file else {
        return Err(loc.at(
            cert.span(),
            "client_cert needs an https:// url with ca_file (a client certificate only travels over TLS)",
        ));
    };
    let identity = ClientIdentity {
        cert: existing_file(loc, base, cert).map_err(|e| named("client_cert", e))?,
        key: existing_file(loc, base, key).map_err(|e| named("client_key", e))?,
    };
    crate::agent::tls_client_config(ca_file, Some(&identity)).map_err(|e| {
        let chain = format!("{e:#}");
        let span = if chain.starts_with("client_key") {
            key.span()
        } else {
            cert.span()
        };
        loc.at(span, chain)
    })?;
    Ok(Some(identity))
}

fn named(key: &str, mut e: PlanError) -> PlanError {
    e.message = format!("{key}: {}", e.message);
    e
}
