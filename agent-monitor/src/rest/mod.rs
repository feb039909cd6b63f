//! The JSON REST API beside XML-RPC (`/api/v1/…`), plus `/healthz` and `/metrics`.
//!
//! A thin layer: each endpoint authenticates with the same credentials and roles as
//! `/RPC2` ([`crate::auth`]), turns the request into the XML-RPC method it stands for, calls
//! that method through the same table ([`crate::cmd::Methods`]), and writes the answer as
//! JSON. So the two APIs cannot disagree on what an action does or who may do it. Only what
//! XML-RPC cannot carry is REST's own: the data-volume download ([`data`]), the job's log,
//! and the server-sent-events stream of a pair's state changes ([`events`]).
//!
//! Errors are JSON `{"error": {"code", "fault", "message"}}` with the fault code of
//! docs/protocol.md and an HTTP status for it ([`ApiError`]). The description of every
//! endpoint is served at `/api/v1/openapi.json` (docs/operations.md has the table).

mod data;
mod events;
mod ops;
mod viewers;

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use dxr::Value;
use vrun_proto::{FaultCode, RpcError};

use crate::auth::{Caller, Secrets};
use crate::cmd::{Answer, Methods};
use crate::daemon::Daemon;

/// What every endpoint shares.
pub struct Rest {
    methods: Methods,
    daemon: Arc<Daemon>,
    secrets: Arc<Secrets>,
    /// Becomes true when the daemon starts shutting down: event streams end then, instead
    /// of holding the shutdown for its whole grace.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// JSON request bodies are a few members; anything larger is refused unread.
const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router(daemon: Arc<Daemon>, secrets: Arc<Secrets>, stopping: tokio::sync::watch::Receiver<bool>) -> Router {
    let rest = Arc::new(Rest { methods: Methods::new(Arc::clone(&daemon)), daemon, secrets, stopping });
    let pair = "/api/v1/viewers/{project}/{viewer}";
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/viewers", get(viewers::list))
        .route(pair, get(viewers::show))
        .route(&format!("{pair}/start"), post(viewers::start))
        .route(&format!("{pair}/stop"), post(viewers::stop))
        .route(&format!("{pair}/kill"), post(viewers::kill))
        .route(&format!("{pair}/export"), get(data::export))
        .route(&format!("{pair}/databases"), delete(data::delete_databases))
        .route(&format!("{pair}/log"), get(data::log))
        .route(&format!("{pair}/events"), get(events::stream))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(rest)
}

/// A refusal: the fault code and sentence of the XML-RPC fault it stands for.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: FaultCode,
    message: String,
    /// Missing or wrong credentials (as opposed to a role that may not): ask for them.
    challenge: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: FaultCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), challenge: false }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, FaultCode::UnknownInstance, message)
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> ApiError {
        let status = match e.code {
            FaultCode::InvalidParams
            | FaultCode::InvalidName
            | FaultCode::MalformedRequest
            | FaultCode::BadChecksum => StatusCode::BAD_REQUEST,
            FaultCode::UnknownInstance | FaultCode::UnknownMethod => StatusCode::NOT_FOUND,
            FaultCode::StaleGeneration | FaultCode::IllegalTransition => StatusCode::CONFLICT,
            FaultCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FaultCode::NotAuthorised => StatusCode::FORBIDDEN,
            FaultCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            FaultCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code, e.message)
    }
}

fn fault_name(code: FaultCode) -> &'static str {
    match code {
        FaultCode::InvalidParams => "invalid_params",
        FaultCode::InvalidName => "invalid_name",
        FaultCode::UnknownInstance => "unknown_instance",
        FaultCode::StaleGeneration => "stale_generation",
        FaultCode::IllegalTransition => "illegal_transition",
        FaultCode::BadChecksum => "bad_checksum",
        FaultCode::RequestTooLarge => "request_too_large",
        FaultCode::NotAuthorised => "not_authorised",
        FaultCode::MalformedRequest => "malformed_request",
        FaultCode::UnknownMethod => "unknown_method",
        FaultCode::Internal => "internal",
        FaultCode::ShuttingDown => "shutting_down",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code.code(), "fault": fault_name(self.code), "message": self.message }
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.challenge {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"agent-monitor\""));
        }
        r
    }
}

impl Rest {
    /// The caller, from the same credentials `/RPC2` takes. Missing or wrong ones are 401.
    fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.secrets.authenticate(auth).map_err(|e| ApiError {
            status: StatusCode::UNAUTHORIZED,
            challenge: true,
            ..ApiError::from(e)
        })
    }

    /// Calls XML-RPC method `name` as `caller` would over `/RPC2`: same role check, same code.
    async fn call(&self, caller: &Caller, name: &str, params: Vec<Value>) -> Result<Value, ApiError> {
        let method = self.methods.find(name).expect("REST names only methods of the table");
        let (label, metrics) = (method.name(), crate::metrics::global());
        if let Err(e) = crate::auth::authorize(caller, name, &params) {
            metrics.request(label, Some(e.code.code()));
            return Err(e.into());
        }
        match method.call(params).await {
            Ok(answer) => {
                metrics.request(label, None);
                match answer {
                    Answer::Value(v) => Ok(v),
                    // The two hot methods answer in XML directly; read it back (REST is not hot).
                    Answer::Xml(xml) => dxr::MethodResponse::from_xml(&xml).map(|r| r.value).map_err(|e| {
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, FaultCode::Internal, e.to_string())
                    }),
                }
            }
            Err(e) => {
                metrics.request(label, Some(e.code.code()));
                Err(e.into())
            }
        }
    }

    /// Admin only, for what has no XML-RPC method (the role check XML-RPC would make).
    fn admin(&self, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
        match self.caller(headers)? {
            Caller::Admin => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                FaultCode::NotAuthorised,
                format!("not authorised: {what} is for the admin role"),
            )),
        }
    }
}

/// An XML-RPC value as JSON: structs are objects, base64 is a base64 string.
pub fn to_json(v: &Value) -> serde_json::Value {
    use base64::Engine;
    use serde_json::Value as J;
    match v {
        Value::Integer(i) => J::from(*i),
        Value::Boolean(b) => J::from(*b),
        Value::String(s) => J::from(s.as_str()),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::DateTime(t) => J::from(t.to_string()),
        Value::Base64(b) => J::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Struct(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        _ => J::Null,
    }
}
