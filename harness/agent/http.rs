//! The agent's HTTP routes (/v1/health, /v1/inventory, /v1/jobs, /metrics):
//! authentication, body limits, and JSON in and out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use infraqual_probes::rtt::responder::{parse_nonce, EchoNonces};
use infraqual_probes::system::netns;
use infraqual_probes::{inventory, registry, ProbeContext, Profile};
use serde::Serialize;

use super::auth::{Credentials, Scope};
use super::gate;
use super::jobs::{Jobs, StartError};
use super::metrics;
use crate::api::{ApiError, Health, JobCreated, JobRequest, TargetRegistration, VERSION};

/// Largest request body accepted: job requests are small JSON documents.
pub const MAX_BODY: usize = 1 << 20;
/// A body not received in full by then is abandoned (408), so a client
/// that never sends it cannot hold a connection and a task forever.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct AgentState {
    pub credentials: Credentials,
    /// Run nonces the echo responder answers.
    pub echo_nonces: Arc<EchoNonces>,
    /// Host names accepted besides IP literals and localhost.
    pub allowed_hosts: Vec<String>,
    pub jobs: Jobs,
    pub soaks: super::soak::Soaks,
    pub node: String,
    pub profile: Profile,
    pub echo_port: Option<u16>,
    pub netns: Option<String>,
    pub identity: super::identity::Identity,
}

pub(super) type Reply = Response<Full<Bytes>>;

pub(super) fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    json(
        status,
        &ApiError {
            error: message.into(),
        },
    )
}

/// Serves one request and writes its access-log line.
pub async fn handle(
    state: Arc<AgentState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // Debug formatting escapes anything odd a client put in the path.
    let path = format!("{:?}", req.uri().path());
    let reply = route(&state, peer, req).await;
    tracing::info!(
        target: "access",
        "access peer={peer} method={method} path={path} status={} ms={}",
        reply.status().as_u16(),
        started.elapsed().as_millis()
    );
    Ok(reply)
}

async fn route(state: &AgentState, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    if let Err(refusal) = gate::check_host(req.headers(), &state.allowed_hosts) {
        return error(StatusCode::FORBIDDEN, refusal.to_string());
    }
    let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let Some(scope) = state.credentials.scope(header) else {
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    };
    let path = req.uri().path().to_string();
    if path == "/v1/jobs"
        || path.starts_with("/v1/jobs/")
        || path == "/v1/targets"
        || path.starts_with(super::soak_routes::PREFIX)
    {
        if let Err(refusal) = gate::check_not_browser(req.headers()) {
            return error(StatusCode::FORBIDDEN, refusal.to_string());
        }
        if scope != Scope::Jobs {
            return error(
                StatusCode::FORBIDDEN,
                "this token is read-only (health, inventory, metrics); jobs need the job token",
            );
        }
        if req.method() == Method::POST {
            if let Err(refusal) = gate::check_json(req.headers()) {
                return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, refusal.to_string());
            }
        }
    }
    let method = req.method().clone();
    let reply = match (method, path.as_str()) {
        (Method::GET, "/v1/health") => health(state),
        (Method::GET, "/v1/inventory") => inventory(state).await,
        (Method::POST, "/v1/jobs") => start_job(state, peer, req).await,
        (Method::POST, "/v1/targets") => register_targets(state, peer, req).await,
        (_, p) if p.starts_with(super::soak_routes::PREFIX) => {
            super::soak_routes::route(state, peer, req).await
        }
        (Method::GET, "/metrics") => {
            let mut resp = Response::new(Full::new(Bytes::from(metrics::render(
                &state.jobs,
                &state.node,
            ))));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        (method, p) if p.starts_with("/v1/jobs/") => {
            let id = &p["/v1/jobs/".len()..];
            match method {
                Method::GET => match state.jobs.poll(id) {
                    Some(status) => json(StatusCode::OK, &status),
                    None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
                },
                Method::DELETE => {
                    if state.jobs.cancel(id, "cancelled by the coordinator") {
                        json(
                            StatusCode::OK,
                            &serde_json::json!({"id": id, "cancelled": true}),
                        )
                    } else {
                        error(StatusCode::NOT_FOUND, format!("no job {id}"))
                    }
                }
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE"),
            }
        }
        (_, "/v1/health" | "/v1/inventory" | "/v1/jobs" | "/v1/targets" | "/metrics") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        }
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    };
    reply
}

fn health(state: &AgentState) -> Reply {
    json(
        StatusCode::OK,
        &Health {
            version: VERSION.to_string(),
            node: state.node.clone(),
            probes: registry::names_in_order().map(|p| p.to_string()).collect(),
            echo_port: state.echo_port,
            netns: state.netns.clone(),
            pod_ip: state.identity.pod_ip,
            host_ip: state.identity.host_ip,
            labels: state.identity.labels.clone(),
        },
    )
}

/// Runs the inventory on a fresh thread (which may enter the agent's netns;
/// a pooled thread must never change namespace).
async fn inventory(state: &AgentState) -> Reply {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut ctx = ProbeContext::new(&state.node, state.profile.clone());
    ctx.cancel = ctx
        .cancel
        .with_deadline(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let netns = state.netns.clone();
    let spawned = std::thread::Builder::new()
        .name("inventory".into())
        .spawn(move || {
            let outcome = match netns {
                Some(ns) => netns::enter(&ns).map_err(|e| e.to_string()),
                None => Ok(()),
            }
            .and_then(|_| {
                registry::run(inventory::NAME, &serde_json::Value::Null, &ctx)
                    .map_err(|e| e.to_string())
            });
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start a thread: {e}"),
        );
    }
    match rx.await {
        Ok(Ok(result)) => json(StatusCode::OK, &result),
        Ok(Err(message)) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "inventory thread died"),
    }
}

/// The body of a small JSON request, bounded in size and time.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        ));
    }
    let collecting = Limited::new(req.into_body(), MAX_BODY).collect();
    let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, collecting).await else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        ));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            ))
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("reading the body: {e}"),
        )),
    }
}

/// A small JSON body as `T`; `what` names it in the 400 (`invalid {what}`).
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    what: &str,
) -> Result<T, Reply> {
    let body = read_body(req).await?;
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid {what}: {e}")))
}

/// A coordinator allows the addresses of its plan's other agents as rtt
/// and mtu targets, for the time its run may take.
async fn register_targets(state: &AgentState, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let registration: TargetRegistration = match read_json(req, "registration").await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let ttl =
        std::time::Duration::from_millis(registration.ttl_ms).min(super::targets::MAX_REGISTRATION);
    let nonce = match registration.echo_nonce.as_deref().map(parse_nonce) {
        Some(None) => return error(StatusCode::BAD_REQUEST, "echo_nonce: 32 hex digits"),
        Some(Some(n)) => Some(n),
        None => None,
    };
    if let Some(nonce) = nonce {
        if !state.echo_nonces.register(nonce, ttl) {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many echo nonces registered",
            );
        }
    }
    tracing::info!(
        target: "audit",
        "audit peer={peer} action=register-targets addresses={:?} echo_nonce={} ttl_ms={}",
        registration.addresses,
        nonce.is_some(),
        registration.ttl_ms
    );
    match state.jobs.targets.register(&registration.addresses, ttl) {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({"registered": registration.addresses.len()}),
        ),
        Err(m) => error(StatusCode::TOO_MANY_REQUESTS, m),
    }
}

async fn start_job(state: &AgentState, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let job: JobRequest = match read_json(req, "job request").await {
        Ok(job) => job,
        Err(reply) => return reply,
    };
    let (probe, params) = (job.probe, job.params.to_string());
    let started = state.jobs.start(job);
    let outcome = match &started {
        Ok(id) => format!("started id={id}"),
        Err(e) => format!("refused reason={:?}", e.to_string()),
    };
    tracing::info!(
        target: "audit",
        "audit peer={peer} action=start-job probe={probe} params={params} outcome={outcome}"
    );
    match started {
        Ok(id) => json(StatusCode::CREATED, &JobCreated { id }),
        Err(e) => refusal(e),
    }
}

/// The answer to a job or soak the agent would not start.
pub(super) fn refusal(e: StartError) -> Reply {
    match e {
        StartError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        StartError::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
        StartError::Busy(m) => error(StatusCode::CONFLICT, m),
        StartError::Full(m) => {
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, m);
            resp.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from(super::jobs::RETRY_AFTER_SECS),
            );
            resp
        }
    }
}
