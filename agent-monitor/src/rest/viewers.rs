//! List, show, start, stop and kill viewers: each the XML-RPC method of the same meaning.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dxr::Value;
use serde::Deserialize;
use vrun_proto::methods::{self as m, LaunchViewer, PairRef};
use vrun_proto::Pair;

use super::{to_json, ApiError, Rest};

/// The pair named by the path, validated like any XML-RPC name (fault 2 otherwise).
pub fn pair(project: &str, viewer: &str) -> Result<Pair, ApiError> {
    Pair::new(project, viewer).map_err(|e| vrun_proto::RpcError::from(e).into())
}

/// Calls method `name` with the path's pair (`{project, viewer}`) as its one parameter.
pub async fn call_on_pair(
    r: &Rest,
    headers: &HeaderMap,
    project: &str,
    viewer: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let caller = r.caller(headers)?;
    let p = pair(project, viewer)?;
    r.call(&caller, name, PairRef { pair: p }.to_params()).await
}

/// `GET /api/v1/viewers`: the newest instance of every pair (`listViewers`).
pub async fn list(State(r): State<Arc<Rest>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = r.caller(&headers)?;
    let v = r.call(&caller, m::LIST_VIEWERS, Vec::new()).await?;
    Ok(Json(serde_json::json!({ "viewers": to_json(&v) })).into_response())
}

/// `GET /api/v1/viewers/{project}/{viewer}`: state, node, job, address, history (`viewerStatus`).
pub async fn show(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = call_on_pair(&r, &headers, &project, &viewer, m::VIEWER_STATUS).await?;
    Ok(Json(to_json(&v)).into_response())
}

/// The optional body of `start`: what `launchViewer` takes besides the pair.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    user: Option<String>,
    viewer_uuid: Option<String>,
    resultsfolder: Option<String>,
    db_path: Option<String>,
}

/// `POST …/start` (`launchViewer`): 202 with the reply (launched, queued, state, generation).
pub async fn start(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = r.caller(&headers)?;
    let p = pair(&project, &viewer)?;
    // Read here rather than by axum's `Json`, whose refusals are plain text (and 415/422).
    let b: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, vrun_proto::FaultCode::InvalidParams, format!("body: {e}"))
        })?
    };
    let mut req = LaunchViewer::new(p);
    req.user = b.user;
    req.viewer_uuid = b.viewer_uuid;
    req.resultsfolder = b.resultsfolder;
    req.db_path = b.db_path;
    // Through the decoder, so the members are checked exactly as over XML-RPC.
    let params = req.to_params();
    LaunchViewer::from_params(&params)?;
    let v = r.call(&caller, m::LAUNCH_VIEWER, params).await?;
    Ok((StatusCode::ACCEPTED, Json(to_json(&v))).into_response())
}

/// `POST …/stop` (`abortViewer`): the job saves the database and stops; 202.
pub async fn stop(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    call_on_pair(&r, &headers, &project, &viewer, m::ABORT_VIEWER).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "stopping": true }))).into_response())
}

/// `POST …/kill` (`killViewer`, admin): answers once no job, domain or work directory is left.
pub async fn kill(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = call_on_pair(&r, &headers, &project, &viewer, m::KILL_VIEWER).await?;
    Ok(Json(serde_json::json!({ "killed": matches!(v, Value::Integer(1)) })).into_response())
}
