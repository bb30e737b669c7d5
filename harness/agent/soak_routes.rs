//! The soak routes: `POST /v1/soaks` starts one, `GET /v1/soaks/<id>?from=N`
//! polls it (renewing its lease) and fetches its interval log from byte N
//! (without `from`: from what the agent still holds),
//! `DELETE /v1/soaks/<id>` cancels it. Job scope, like the job routes.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::http::{error, json, read_json, refusal, AgentState, Reply};
use super::soak::PollError;
use crate::api::{JobCreated, SoakRequest};

pub const PREFIX: &str = "/v1/soaks";

pub async fn route(state: &AgentState, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == PREFIX {
        return match method {
            Method::POST => start(state, peer, req).await,
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        };
    }
    let Some(id) = path.strip_prefix(PREFIX).and_then(|p| p.strip_prefix('/')) else {
        return error(StatusCode::NOT_FOUND, format!("no route {path}"));
    };
    match method {
        Method::GET => {
            let from = match from_query(req.uri().query()) {
                Ok(from) => from,
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            };
            match state.soaks.poll(id, from) {
                Ok(status) => json(StatusCode::OK, &status),
                Err(PollError::Unknown) => error(StatusCode::NOT_FOUND, format!("no soak {id}")),
                Err(e @ PollError::Offset { .. }) => error(StatusCode::CONFLICT, e.to_string()),
            }
        }
        Method::DELETE => {
            tracing::info!(target: "audit", "audit peer={peer} action=cancel-soak id={id:?}");
            if state.soaks.cancel(id, "cancelled by the coordinator") {
                json(
                    StatusCode::OK,
                    &serde_json::json!({"id": id, "cancelled": true}),
                )
            } else {
                error(StatusCode::NOT_FOUND, format!("no soak {id}"))
            }
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE"),
    }
}

async fn start(state: &AgentState, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let soak: SoakRequest = match read_json(req, "soak request").await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let described = format!("{soak:?}");
    let started = state.soaks.start(&state.jobs, soak);
    let outcome = match &started {
        Ok(id) => format!("started id={id}"),
        Err(e) => format!("refused reason={:?}", e.to_string()),
    };
    tracing::info!(
        target: "audit",
        "audit peer={peer} action=start-soak request={described:?} outcome={outcome}"
    );
    match started {
        Ok(id) => json(StatusCode::CREATED, &JobCreated { id }),
        Err(e) => refusal(e),
    }
}

/// `from=N` in the query, if there.
fn from_query(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("from=") {
            return value
                .parse()
                .map(Some)
                .map_err(|_| format!("from={value}: a byte offset"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_query() {
        assert_eq!(from_query(None), Ok(None));
        assert_eq!(from_query(Some("x=1")), Ok(None));
        assert_eq!(from_query(Some("from=1234")), Ok(Some(1234)));
        assert_eq!(from_query(Some("x=1&from=7")), Ok(Some(7)));
        assert!(from_query(Some("from=-1")).is_err());
    }
}
