//! A coordinator's connection to one agent: HTTP/1.1 over TCP or TLS with
//! the bearer token, one kept-alive connection, bounded times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::plan::AgentPlan;
use crate::api::ApiError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Results carry histograms; a whole services sweep stays far below this.
const MAX_RESPONSE: usize = 64 << 20;
/// A connection idle longer than this may have been closed by the agent.
const IDLE_REUSE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("agent {agent} ({url}): cannot connect: {message}")]
    Connect {
        agent: String,
        url: String,
        message: String,
    },
    #[error("agent {agent} ({url}): {message}")]
    Transport {
        agent: String,
        url: String,
        message: String,
    },
    #[error("agent {agent} ({url}): no answer within {seconds} s")]
    Timeout {
        agent: String,
        url: String,
        seconds: u64,
    },
    #[error("agent {agent} ({url}) answered {status}: {message}")]
    Status {
        agent: String,
        url: String,
        status: StatusCode,
        message: String,
    },
    #[error("agent {agent} ({url}): unreadable answer: {message}")]
    Decode {
        agent: String,
        url: String,
        message: String,
    },
}

impl ClientError {
    /// Whether the agent itself did not answer (as opposed to refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Transport { .. }
                | ClientError::Timeout { .. }
        )
    }
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    last_used: Instant,
}

pub struct AgentClient {
    pub name: String,
    url: String,
    host: String,
    port: u16,
    authority: String,
    bearer: Option<String>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    conn: Mutex<Option<Connection>>,
}

impl AgentClient {
    pub fn new(agent: &AgentPlan) -> anyhow::Result<Self> {
        use anyhow::Context;
        let host = agent
            .url
            .host()
            .context("agent url has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let port = agent.url.port_u16().context("agent url has no port")?;
        let tls = if agent.url.scheme_str() == Some("https") {
            let config = match &agent.ca_file {
                Some(ca) => crate::agent::tls_client_config(ca)
                    .with_context(|| format!("agent {}", agent.name))?,
                None => anyhow::bail!(
                    "agent {}: an https url needs ca_file (the CA that signed the agent's certificate)",
                    agent.name
                ),
            };
            let name = ServerName::try_from(host.clone()).with_context(|| {
                format!("agent {}: `{host}` is not a valid TLS name", agent.name)
            })?;
            Some((tokio_rustls::TlsConnector::from(Arc::clone(&config)), name))
        } else {
            None
        };
        Ok(AgentClient {
            name: agent.name.clone(),
            url: agent.url.to_string(),
            authority: format!("{}:{port}", agent.url.host().unwrap_or(&host)),
            host,
            port,
            bearer: agent.token.as_ref().map(|t| format!("Bearer {t}")),
            tls,
            conn: Mutex::new(None),
        })
    }

    fn err_connect(&self, message: impl ToString) -> ClientError {
        ClientError::Connect {
            agent: self.name.clone(),
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    fn err_transport(&self, message: impl ToString) -> ClientError {
        ClientError::Transport {
            agent: self.name.clone(),
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| self.err_connect("timed out"))?
        .map_err(|e| self.err_connect(e))?;
        let _ = stream.set_nodelay(true);
        let sender = match &self.tls {
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), stream))
                        .await
                        .map_err(|_| self.err_connect("TLS handshake timed out"))?
                        .map_err(|e| self.err_connect(format!("TLS: {e}")))?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| self.err_connect(e))?;
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| self.err_connect(e))?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Connection {
            sender,
            last_used: Instant::now(),
        })
    }

    /// One request. Idempotent methods are retried once on a fresh
    /// connection when the kept-alive one turns out to be dead.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let idempotent = method != Method::POST;
        let mut guard = self.conn.lock().await;
        for attempt in 0..2 {
            let stale = guard
                .as_ref()
                .is_none_or(|c| c.sender.is_closed() || c.last_used.elapsed() > IDLE_REUSE);
            if stale {
                *guard = Some(self.connect().await?);
            }
            let Some(conn) = guard.as_mut() else {
                return Err(self.err_transport("no connection"));
            };
            if conn.sender.ready().await.is_err() {
                *guard = None;
                continue;
            }
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(HOST, &self.authority)
                .header(CONTENT_TYPE, "application/json");
            if let Some(bearer) = &self.bearer {
                builder = builder.header(AUTHORIZATION, bearer);
            }
            let req = builder
                .body(Full::new(Bytes::from(body.clone().unwrap_or_default())))
                .map_err(|e| self.err_transport(e))?;
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, conn.sender.send_request(req)).await;
            let resp = match sent {
                Err(_) => {
                    *guard = None;
                    return Err(ClientError::Timeout {
                        agent: self.name.clone(),
                        url: self.url.clone(),
                        seconds: REQUEST_TIMEOUT.as_secs(),
                    });
                }
                Ok(Err(e)) => {
                    *guard = None;
                    if idempotent && attempt == 0 {
                        continue;
                    }
                    return Err(self.err_transport(e));
                }
                Ok(Ok(resp)) => resp,
            };
            let status = resp.status();
            let collected = tokio::time::timeout(
                REQUEST_TIMEOUT,
                Limited::new(resp.into_body(), MAX_RESPONSE).collect(),
            )
            .await;
            let bytes = match collected {
                Ok(Ok(c)) => c.to_bytes(),
                Ok(Err(e)) => {
                    *guard = None;
                    return Err(self.err_transport(format!("reading the answer: {e}")));
                }
                Err(_) => {
                    *guard = None;
                    return Err(ClientError::Timeout {
                        agent: self.name.clone(),
                        url: self.url.clone(),
                        seconds: REQUEST_TIMEOUT.as_secs(),
                    });
                }
            };
            if let Some(c) = guard.as_mut() {
                c.last_used = Instant::now();
            }
            return Ok((status, bytes));
        }
        Err(self.err_transport("connection closed twice"))
    }

    fn decode<T: DeserializeOwned>(
        &self,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(bytes).chars().take(200).collect());
            return Err(ClientError::Status {
                agent: self.name.clone(),
                url: self.url.clone(),
                status,
                message,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            agent: self.name.clone(),
            url: self.url.clone(),
            message: e.to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, bytes) = self.request(Method::GET, path, None).await?;
        self.decode(status, &bytes)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.err_transport(e))?;
        let (status, bytes) = self.request(Method::POST, path, Some(bytes)).await?;
        self.decode(status, &bytes)
    }

    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let (status, bytes) = self.request(Method::DELETE, path, None).await?;
        self.decode::<serde_json::Value>(status, &bytes).map(|_| ())
    }
}
