//! The HTTP side of XML-RPC: `POST /RPC2`.
//!
//! Everything that can be refused without understanding the call is refused here, before
//! any handler runs: bad credentials, oversized bodies (before reading them whole), non-UTF-8,
//! malformed XML or nesting too deep (both found by [`vrun_proto::wire`]'s parser), unknown
//! methods. Each refusal is an XML-RPC fault with a documented code; the HTTP status stays
//! 200 as XML-RPC clients expect. Calls are parsed and answers written by
//! [`vrun_proto::wire`], not through dxr's serde layer, which cost a quarter of the CPU of a
//! status call (docs/performance.md).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use vrun_proto::wire::{parse_call, write_fault, write_response};
use vrun_proto::{FaultCode, RpcError};

use crate::auth::{self, Secrets};
use crate::cmd::{Answer, Methods};

pub struct Rpc {
    methods: Methods,
    secrets: Arc<Secrets>,
    max_body: usize,
}

pub fn router(methods: Methods, secrets: Arc<Secrets>, max_body: usize) -> Router {
    let rpc = Arc::new(Rpc { methods, secrets, max_body });
    Router::new()
        .route("/RPC2", post(endpoint))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(rpc)
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
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
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
    let too_large = || {
        RpcError::new(FaultCode::RequestTooLarge, format!("request body is larger than {} bytes", rpc.max_body))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > rpc.max_body) {
        return fault(too_large());
    }
    let bytes = match axum::body::to_bytes(body, rpc.max_body).await {
        Ok(b) => b,
        Err(_) => return fault(too_large()),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return fault(RpcError::new(FaultCode::MalformedRequest, "request body is not UTF-8"));
    };
    let call = match parse_call(text) {
        Ok(c) => c,
        Err(e) => return fault(RpcError::new(FaultCode::MalformedRequest, format!("not an XML-RPC call: {e}"))),
    };
    let Some(method) = rpc.methods.find(&call.name) else {
        let name: String = call.name.chars().take(64).collect();
        return fault(RpcError::new(FaultCode::UnknownMethod, format!("unknown method {name:?}")));
    };
    if let Err(e) = auth::authorize(&caller, &call.name, &call.params) {
        tracing::warn!(peer = %show(peer), ?caller, method = %call.name, reason = %e.message, "refused a call");
        return fault(e);
    }
    match method.call(call.params).await {
        Ok(Answer::Value(value)) => xml(write_response(&value)),
        Ok(Answer::Xml(answer)) => xml(answer),
        Err(e) => fault(e),
    }
}
