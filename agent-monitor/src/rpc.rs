//! The HTTP side of XML-RPC: `POST /RPC2`.
//!
//! Everything that can be refused without understanding the call is refused here, before
//! any handler runs: bad credentials, oversized bodies (before reading them whole; only
//! `storeviewer` may be larger than `max_call`, and only `max_large` such bodies are read at
//! once), bodies that do not arrive within their deadline, non-UTF-8,
//! malformed XML or nesting too deep (both found by [`vrun_proto::wire`]'s parser), unknown
//! methods. Each refusal is an XML-RPC fault with a documented code; the HTTP status stays
//! 200 as XML-RPC clients expect. Calls are parsed and answers written by
//! [`vrun_proto::wire`], not through dxr's serde layer, which cost a quarter of the CPU of a
//! status call (docs/performance.md).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use vrun_proto::wire::{parse_call, write_fault, write_response};
use vrun_proto::{FaultCode, RpcError};

use crate::auth::{self, Caller, Secrets};
use crate::cmd::{Answer, Methods};
use crate::edge::BodyLimits;

/// The only methods whose body may exceed `max_call`: they carry a viewer database.
const LARGE_METHODS: [&str; 2] = [vrun_proto::methods::STORE_VIEWER, vrun_proto::methods::NODE_SALVAGED];

fn is_large(method: Option<&str>) -> bool {
    method.is_some_and(|m| LARGE_METHODS.contains(&m))
}

pub struct Rpc {
    methods: Methods,
    secrets: Arc<Secrets>,
    limits: BodyLimits,
    large: tokio::sync::Semaphore,
}

pub fn router(methods: Methods, secrets: Arc<Secrets>, limits: BodyLimits) -> Router {
    let large = tokio::sync::Semaphore::new(limits.max_large);
    let rpc = Arc::new(Rpc { methods, secrets, limits, large });
    Router::new().route("/RPC2", post(endpoint)).layer(axum::extract::DefaultBodyLimit::disable()).with_state(rpc)
}

fn xml(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn fault(e: RpcError) -> Response {
    xml(write_fault(e.code.code(), &e.message))
}

/// The caller's address for a log line (`-` when served without connection info).
fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "-".into(), |p| p.to_string())
}

async fn endpoint(State(rpc): State<Arc<Rpc>>, request: Request) -> Response {
    // The whole request, not the `HeaderMap` extractor, which clones every header per call.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // From the connection's task, not a `ConnectInfo` extension (a map allocated per request).
    let peer = crate::edge::peer();
    // Who is calling is settled before the body is even read.
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match rpc.secrets.authenticate(auth_header) {
        Ok(c) => c,
        Err(e) => {
            // The reason, never the credentials.
            tracing::warn!(peer = %show(peer), reason = %e.message, "refused a call");
            return fault(e);
        }
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > rpc.limits.max_body) {
        return fault(too_large(rpc.limits.max_body));
    }
    let read = tokio::time::timeout(rpc.limits.timeout, read_body(&rpc, &caller, body, declared)).await;
    let (bytes, _large) = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return fault(e),
        Err(_) => {
            let why = format!("request body did not arrive within {} s", rpc.limits.timeout.as_secs());
            tracing::warn!(peer = %show(peer), ?caller, reason = %why, "refused a call");
            return fault(RpcError::new(FaultCode::MalformedRequest, why));
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return fault(RpcError::new(FaultCode::MalformedRequest, "request body is not UTF-8"));
    };
    let call = match parse_call(text) {
        Ok(c) => c,
        Err(e) => return fault(RpcError::new(FaultCode::MalformedRequest, format!("not an XML-RPC call: {e}"))),
    };
    // The authoritative check; the peek in `read_body` only decided whether to read on.
    if bytes.len() > rpc.limits.max_call && !is_large(Some(call.name.as_str())) {
        return fault(too_large(rpc.limits.max_call));
    }
    let Some(method) = rpc.methods.find(&call.name) else {
        let name: String = call.name.chars().take(64).collect();
        return fault(RpcError::new(FaultCode::UnknownMethod, format!("unknown method {name:?}")));
    };
    let name = method.name();
    let metrics = crate::metrics::global();
    if let Err(e) = auth::authorize(&caller, &call.name, &call.params) {
        tracing::warn!(peer = %show(peer), ?caller, method = %call.name, reason = %e.message, "refused a call");
        metrics.request(name, Some(e.code.code()));
        return fault(e);
    }
    match method.call(call.params).await {
        Ok(answer) => {
            metrics.request(name, None);
            match answer {
                Answer::Value(value) => xml(write_response(&value)),
                Answer::Xml(answer) => xml(answer),
            }
        }
        Err(e) => {
            metrics.request(name, Some(e.code.code()));
            fault(e)
        }
    }
}

fn too_large(limit: usize) -> RpcError {
    RpcError::new(FaultCode::RequestTooLarge, format!("request body is larger than {limit} bytes"))
}

/// Reads the body: up to `max_call` for any call, up to `max_body` for a `storeviewer` from a
/// caller who may make one, holding one of the `max_large` permits (returned, so that it is
/// held until the call is answered: its parsed form and decoded database take memory too).
async fn read_body<'r>(
    rpc: &'r Rpc,
    caller: &Caller,
    mut body: axum::body::Body,
    declared: Option<usize>,
) -> Result<(Vec<u8>, Option<tokio::sync::SemaphorePermit<'r>>), RpcError> {
    use http_body_util::BodyExt;
    let limits = &rpc.limits;
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limits.max_call));
    let mut permit = None;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| RpcError::new(FaultCode::MalformedRequest, format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        let len = buf.len() + data.len();
        if len > limits.max_call && permit.is_none() {
            let mut head = buf[..buf.len().min(1024)].to_vec();
            head.extend_from_slice(&data[..data.len().min(1024)]);
            if matches!(caller, Caller::Launcher | Caller::Metrics) || !is_large(method_in_head(&head)) {
                return Err(too_large(limits.max_call));
            }
            permit = Some(rpc.large.acquire().await.map_err(|_| too_large(limits.max_call))?);
        }
        if len > limits.max_body {
            return Err(too_large(limits.max_body));
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf, permit))
}

/// The method name near the start of a call (`<methodName>` comes first in every client's
/// calls), if it can be seen there.
fn method_in_head(head: &[u8]) -> Option<&str> {
    let head = &head[..head.len().min(1024)];
    let start = head.windows(12).position(|w| w == b"<methodName>")? + 12;
    let len = head[start..].iter().position(|&b| b == b'<')?;
    std::str::from_utf8(&head[start..start + len]).ok().map(str::trim)
}
