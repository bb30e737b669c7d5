//! TLS for the agent (server side) and the coordinator (client side), by
//! rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in the file", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow!("{}: no private key in the file", path.display()),
        other => anyhow!(other).context(format!("{}: not a PEM key file", path.display())),
    })
}

/// The agent's TLS; with `client_ca` every client must present a
/// certificate that CA signed (mutual TLS), or the handshake fails.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = roots(ca).context("--client-ca")?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .with_context(|| format!("--client-ca {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .with_context(|| {
            format!(
                "--tls-cert {} / --tls-key {}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

fn roots(ca_file: &Path) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca_file)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: unusable CA certificate", ca_file.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The certificate and key a coordinator shows agents that check client
/// certificates (a plan's `client_cert` and `client_key`).
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// A client that trusts exactly the CA certificates in `ca_file` and,
/// given an identity, presents it to agents that ask for one.
pub fn client_config(
    ca_file: &Path,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(ca_file)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                read_certs(&id.cert).context("client_cert")?,
                read_key(&id.key).context("client_key")?,
            )
            .with_context(|| {
                format!(
                    "client_cert {} / client_key {}: the key does not fit the certificate",
                    id.cert.display(),
                    id.key.display()
                )
            })?,
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pem_certificates_and_keys_load_and_bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = write(dir.path(), "cert.pem", &cert.pem());
        let key_path = write(dir.path(), "key.pem", &key.serialize_pem());
        assert!(server_config(&cert_path, &key_path, None).is_ok());
        assert!(server_config(&cert_path, &key_path, Some(&cert_path)).is_ok());
        assert!(client_config(&cert_path, None).is_ok());

        let e = format!("{:#}", read_key(&cert_path).unwrap_err());
        assert!(e.contains("cert.pem: no private key in the file"), "{e}");
        let e = format!("{:#}", read_certs(&key_path).unwrap_err());
        assert!(e.contains("key.pem: no certificate in the file"), "{e}");
        let torn = write(
            dir.path(),
            "torn.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
        );
        let e = format!("{:#}", read_certs(&torn).unwrap_err());
        assert!(e.contains("torn.pem: not a PEM certificate file"), "{e}");
        let e = format!(
            "{:#}",
            read_certs(&dir.path().join("absent.pem")).unwrap_err()
        );
        assert!(e.contains("absent.pem"), "{e}");
    }
}
