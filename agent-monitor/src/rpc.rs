//! The HTTP side of XML-RPC: `POST /RPC2`.
//!
//! Everything that can be refused without understanding the call is refused here, before
//! any handler runs: oversized bodies (before reading them whole), non-UTF-8, nesting too deep
//! for the recursive parser, malformed XML, unknown methods. Each refusal is an XML-RPC
//! fault with a documented code; the HTTP status stays 200 as XML-RPC clients expect.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use dxr::{Fault, FaultResponse, MethodCall, MethodResponse};
use dxr_server::Handler;
use vrun_proto::{FaultCode, RpcError};

use crate::auth::{self, Secrets};

pub use vrun_proto::value::{nesting_depth, MAX_NESTING};

pub struct Rpc {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
    secrets: Arc<Secrets>,
    max_body: usize,
}

pub fn router(handlers: HashMap<&'static str, Box<dyn Handler>>, secrets: Arc<Secrets>, max_body: usize) -> Router {
    let rpc = Arc::new(Rpc { handlers, secrets, max_body });
    Router::new()
        .route("/RPC2", post(endpoint))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(rpc)
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn fault(e: RpcError) -> Response {
    let f: Fault = e.into();
    match (FaultResponse { fault: f }).to_xml() {
        Ok(body) => xml(StatusCode::OK, body),
        Err(e) => xml(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn endpoint(
    State(rpc): State<Arc<Rpc>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Who is calling is settled before the body is even read.
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match rpc.secrets.authenticate(auth_header) {
        Ok(c) => c,
        Err(e) => {
            // The reason, never the credentials.
            tracing::warn!(%peer, reason = %e.message, "refused a call");
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
    if nesting_depth(text) > MAX_NESTING {
        return fault(RpcError::new(FaultCode::MalformedRequest, format!("values nest deeper than {MAX_NESTING} levels")));
    }
    let call = match MethodCall::from_xml(text) {
        Ok(c) => c,
        Err(e) => return fault(RpcError::new(FaultCode::MalformedRequest, format!("not an XML-RPC call: {e}"))),
    };
    let Some(handler) = rpc.handlers.get(call.name.as_ref()) else {
        let name: String = call.name.chars().take(64).collect();
        return fault(RpcError::new(FaultCode::UnknownMethod, format!("unknown method {name:?}")));
    };
    if let Err(e) = auth::authorize(&caller, &call.name, &call.params) {
        tracing::warn!(%peer, ?caller, method = %call.name, reason = %e.message, "refused a call");
        return fault(e);
    }
    match handler.handle(&call.params, headers).await {
        Ok(value) => match (MethodResponse { value }).to_xml() {
            Ok(body) => xml(StatusCode::OK, body),
            Err(e) => fault(RpcError::new(FaultCode::Internal, e.to_string())),
        },
        Err(f) => {
            let code = FaultCode::from_code(f.code()).unwrap_or(FaultCode::Internal);
            fault(RpcError::new(code, f.string()))
        }
    }
}
