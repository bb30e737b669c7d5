//! A coordinator's connection to one agent: HTTP/1.1 over TCP or TLS with
//! the bearer token and bounded times. hyper_util's client keeps the
//! connection alive and retries a request the agent never saw (one sent on
//! a kept-alive connection the agent had just closed); dialing, with TLS
//! that trusts only the plan's CA, is ours.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::plan::AgentPlan;
use crate::api::ApiError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Results carry histograms; a whole services sweep stays far below this.
const MAX_RESPONSE: usize = 64 << 20;
/// Well inside the agent's 10 s header read timeout, so a kept-alive
/// connection is dropped here before the agent closes it under a request.
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

/// Dials one agent: TCP, then TLS when its url is https.
#[derive(Clone)]
struct AgentConnector {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl AgentConnector {
    async fn dial(self) -> io::Result<AgentStream> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = self.tls else {
            return Ok(AgentStream::Plain(TokioIo::new(tcp)));
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
            .map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?;
        Ok(AgentStream::Tls(Box::new(TokioIo::new(tls))))
    }
}

impl tower_service::Service<Uri> for AgentConnector {
    type Response = AgentStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<AgentStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The uri is always the agent's own: one client per agent.
    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().dial())
    }
}

enum AgentStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for AgentStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for AgentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for AgentStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_flush(cx),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The causes under the client's own error, which names only the stage
/// (`client error (Connect)`).
fn causes(e: &hyper_util::client::legacy::Error) -> String {
    let mut parts = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// An agent started with `--client-ca` refuses a coordinator without a
/// client certificate by a TLS alert; say what the plan lacks.
fn with_tls_hint(message: String) -> String {
    if message.contains("CertificateRequired") {
        format!(
            "{message} (the agent checks client certificates: give its plan entry client_cert and client_key)"
        )
    } else {
        message
    }
}

pub struct AgentClient {
    pub name: String,
    url: String,
    /// `scheme://authority` of the agent; request paths are appended.
    base: String,
    bearer: Option<String>,
    http: Client<AgentConnector, Full<Bytes>>,
}

impl AgentClient {
    pub fn new(agent: &AgentPlan) -> anyhow::Result<Self> {
        use anyhow::Context;
        let authority = agent
            .url
            .authority()
            .context("agent url has no host")?
            .as_str();
        let host = agent
            .url
            .host()
            .context("agent url has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let port = agent.url.port_u16().context("agent url has no port")?;
        let scheme = agent.url.scheme_str().unwrap_or("http");
        let tls = if scheme == "https" {
            let config = match &agent.ca_file {
                Some(ca) => crate::agent::tls_client_config(ca, agent.client_identity.as_ref())
                    .with_context(|| format!("agent {}", agent.name))?,
                None => anyhow::bail!(
                    "agent {}: an https url needs ca_file (the CA that signed the agent's certificate)",
                    agent.name
                ),
            };
            let name = ServerName::try_from(host.clone()).with_context(|| {
                format!("agent {}: `{host}` is not a valid TLS name", agent.name)
            })?;
            Some((TlsConnector::from(Arc::clone(&config)), name))
        } else {
            None
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_REUSE)
            .pool_max_idle_per_host(1)
            .pool_timer(TokioTimer::new())
            .build(AgentConnector { host, port, tls });
        Ok(AgentClient {
            name: agent.name.clone(),
            url: agent.url.to_string(),
            base: format!("{scheme}://{authority}"),
            bearer: agent.token.as_ref().map(|t| format!("Bearer {t}")),
            http,
        })
    }

    fn err_transport(&self, message: impl ToString) -> ClientError {
        ClientError::Transport {
            agent: self.name.clone(),
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    fn err_timeout(&self) -> ClientError {
        ClientError::Timeout {
            agent: self.name.clone(),
            url: self.url.clone(),
            seconds: REQUEST_TIMEOUT.as_secs(),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json");
        if let Some(bearer) = &self.bearer {
            builder = builder.header(AUTHORIZATION, bearer);
        }
        let req = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.err_transport(e))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| self.err_timeout())?
            .map_err(|e| {
                if e.is_connect() {
                    ClientError::Connect {
                        agent: self.name.clone(),
                        url: self.url.clone(),
                        message: causes(&e),
                    }
                } else {
                    self.err_transport(with_tls_hint(causes(&e)))
                }
            })?;
        let status = resp.status();
        let collected = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(resp.into_body(), MAX_RESPONSE).collect(),
        )
        .await
        .map_err(|_| self.err_timeout())?
        .map_err(|e| self.err_transport(format!("reading the answer: {e}")))?;
        Ok((status, collected.to_bytes()))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback HTTP/1.1 server answering every request `{"ok":true}`,
    /// counting connections and keeping the Authorization headers it saw.
    struct FakeAgent {
        url: String,
        connections: Arc<AtomicUsize>,
        authorizations: Arc<Mutex<Vec<String>>>,
    }

    impl FakeAgent {
        /// `close_after_each`: drop the connection after every answer without
        /// saying so, as an agent that restarts or times out idle ones does.
        async fn start(close_after_each: bool) -> FakeAgent {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let connections = Arc::new(AtomicUsize::new(0));
            let authorizations = Arc::new(Mutex::new(Vec::new()));
            let (count, seen) = (Arc::clone(&connections), Arc::clone(&authorizations));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let seen = Arc::clone(&seen);
                    tokio::spawn(async move {
                        let mut stream = BufReader::new(stream);
                        loop {
                            let mut line = String::new();
                            loop {
                                line.clear();
                                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == "\r\n" {
                                    break;
                                }
                                if let Some((name, value)) = line.split_once(':') {
                                    if name.eq_ignore_ascii_case("authorization") {
                                        seen.lock().unwrap().push(value.trim().to_string());
                                    }
                                }
                            }
                            let body = r#"{"ok":true}"#;
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                 content-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.get_mut().write_all(answer.as_bytes()).await.is_err()
                                || close_after_each
                            {
                                return;
                            }
                        }
                    });
                }
            });
            FakeAgent {
                url,
                connections,
                authorizations,
            }
        }

        fn client(&self) -> AgentClient {
            client_for(&self.url, Some("s3cret"))
        }
    }

    fn client_for(url: &str, token: Option<&str>) -> AgentClient {
        AgentClient::new(&AgentPlan {
            name: "fake".into(),
            url: url.parse().unwrap(),
            token: token.map(str::to_string),
            ca_file: None,
            client_identity: None,
            labels: Default::default(),
            addresses: Default::default(),
            echo_ports: Default::default(),
            echo_agents: Vec::new(),
        })
        .unwrap()
    }

    async fn get_health(client: &AgentClient) {
        let answer: serde_json::Value = client.get("/v1/health").await.unwrap();
        assert_eq!(answer["ok"], true);
    }

    #[tokio::test]
    async fn one_kept_alive_connection_carries_every_request_with_the_token() {
        let agent = FakeAgent::start(false).await;
        let client = agent.client();
        for _ in 0..3 {
            get_health(&client).await;
        }
        client.delete("/v1/jobs/x").await.unwrap();
        assert_eq!(agent.connections.load(Ordering::SeqCst), 1);
        assert_eq!(
            *agent.authorizations.lock().unwrap(),
            vec!["Bearer s3cret"; 4]
        );
    }

    #[tokio::test]
    async fn a_connection_the_agent_closed_is_replaced_not_reported() {
        let agent = FakeAgent::start(true).await;
        let client = agent.client();
        for _ in 0..3 {
            get_health(&client).await;
            // Lets the client see the close before it picks a connection.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(agent.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_agent_nobody_listens_for_is_a_connect_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = client_for(&format!("http://127.0.0.1:{port}"), None);
        let e = client
            .get::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("refused"), "{e}");
    }

    /// An agent that answers its first request and dies after reading the
    /// second, on the same kept-alive connection: what a coordinator
    /// polling a job sees when the agent is killed under a poll.
    async fn agent_dying_under_the_second_request() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut stream = BufReader::new(stream);
            for answered in [true, false] {
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                if answered {
                    let body = r#"{"ok":true}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                }
            }
            drop(listener);
        });
        url
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_unreachable() {
        let url = agent_dying_under_the_second_request().await;
        let client = client_for(&url, Some("s3cret"));
        get_health(&client).await;
        let e = client
            .get::<serde_json::Value>("/v1/jobs/x")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
        assert!(e.is_unreachable(), "{e:?}");
    }
}
