//! The Code Dx compatible JSON API (`{ctx}/api/...`), plus two extensions: the findings
//! listing (for tests and scripts) and `/api/activity` (for the VM's idle timer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::multipart::Field;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::auth::{ApiKey, ApiKeyQuiet};
use super::error::ApiError;
use super::query::ListQuery;
use super::upload_body::LimitedToEnd;
use super::{jobs, AppState};
use crate::config::check_name;
use crate::db::listing;
use crate::db::projects;
use crate::import::Upload;

/// Unknown paths: JSON 404 for the API, which is where clients need to parse it.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("path")
}

fn id_param(p: Result<Path<i64>, axum::extract::rejection::PathRejection>) -> Result<i64, ApiError> {
    p.map(|Path(id)| id).map_err(|_| ApiError::NotFound("project"))
}

pub async fn list_projects(_: ApiKey, State(st): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = st.with_db(|c| projects::list(c)).await?;
    Ok(Json(json!({ "projects": list })))
}

#[derive(Deserialize)]
pub struct NewProject {
    name: String,
}

pub async fn create_project(
    _: ApiKey,
    State(st): State<Arc<AppState>>,
    body: Result<Json<NewProject>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(NewProject { name }) =
        body.map_err(|e| ApiError::BadRequest(format!("expected {{\"name\": \"...\"}}: {e}")))?;
    check_name(&name).map_err(|why| ApiError::BadRequest(format!("project name {why}")))?;
    let n = name.clone();
    match st.with_db(move |c| projects::create(c, &n)).await? {
        Some(id) => Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response()),
        None => Err(ApiError::Conflict(format!("a project named {name:?} already exists"))),
    }
}

pub async fn delete_project(
    _: ApiKey,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = id_param(id)?;
    match st.with_db(move |c| projects::delete(c, id)).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("project")),
    }
}

/// A failed multipart read: 413 when the body went past the limit (`over`), else 400.
fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize, over: &AtomicBool) -> ApiError {
    if over.load(Ordering::Relaxed) {
        ApiError::Upload(StatusCode::PAYLOAD_TOO_LARGE, format!("upload is larger than the limit of {} bytes", limit))
    } else {
        ApiError::Upload(e.status(), format!("bad multipart body: {}", e.body_text()))
    }
}

/// Saves one multipart field to `path`, chunk by chunk (never the whole part in memory).
async fn save_field(
    mut field: Field<'_>,
    path: &std::path::Path,
    limit: usize,
    over: &AtomicBool,
) -> Result<(), ApiError> {
    let mut out = tokio::fs::File::create(path).await?;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit, over))? {
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(())
}

/// `POST /api/projects/{id}/analysis`: store parts `file1`, `file2`, ... and queue a job.
pub async fn analysis(
    _: ApiKey,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let project_id = id_param(id)?;
    let limit = st.config.limits.max_upload_bytes;
    let over = Arc::new(AtomicBool::new(false));
    let request = request.map(|b| axum::body::Body::new(LimitedToEnd::new(b, limit as u64, Arc::clone(&over))));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("expected multipart/form-data: {e}")))?;
    if st.with_db(move |c| projects::get(c, project_id)).await?.is_none() {
        return Err(ApiError::NotFound("project"));
    }
    let job_id = jobs::new_id();
    let dir = st.uploads_dir.join(&job_id);
    tokio::fs::create_dir_all(&dir).await?;
    let mut uploads = Vec::new();
    let saved: Result<(), ApiError> = async {
        while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(e, limit, &over))? {
            let name = field.name().unwrap_or_default().to_owned();
            if !name.starts_with("file") {
                continue; // Code Dx clients may send other form fields; they carry nothing we use.
            }
            let shown = field.file_name().map(|f| format!("{name} ({f})")).unwrap_or_else(|| name.clone());
            let path = dir.join(format!("part{}", uploads.len()));
            save_field(field, &path, limit, &over).await?;
            uploads.push(Upload { name: shown, path });
        }
        if uploads.is_empty() {
            return Err(ApiError::BadRequest("no file parts (file1, file2, ...) in the upload".into()));
        }
        Ok(())
    }
    .await;
    if let Err(e) = saved {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(e);
    }
    let jid = job_id.clone();
    st.with_db(move |c| projects::create_job(c, &jid, project_id)).await?;
    tokio::spawn(jobs::run(st.clone(), job_id.clone(), project_id, dir, uploads));
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobId": job_id }))).into_response())
}

/// Longest `?wait=` honoured (seconds).
const JOB_WAIT_MAX_SECS: u64 = 10;

#[derive(Debug, serde::Deserialize)]
pub struct JobQuery {
    wait: Option<String>,
}

/// `GET /api/jobs/{id}`; with `?wait=S` (extension, up to 10 s) the answer waits until the
/// job is over or S seconds passed, so a client learns of the end at once without polling
/// a single-vCPU guest that is busy importing.
pub async fn job(
    _: ApiKey,
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<JobQuery>,
) -> Result<Json<projects::Job>, ApiError> {
    let wait = match q.wait.as_deref() {
        None => 0,
        Some(w) => w
            .parse::<u64>()
            .map_err(|_| {
                ApiError::BadRequest(format!("wait must be whole seconds (0 to {JOB_WAIT_MAX_SECS}), not {w:?}"))
            })?
            .min(JOB_WAIT_MAX_SECS),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Subscribed before each read: an end between the read and the wait is not missed.
    let mut ended = st.jobs_ended.subscribe();
    loop {
        let id2 = id.clone();
        let job = st.with_db(move |c| projects::get_job(c, &id2)).await?.ok_or(ApiError::NotFound("job"))?;
        let over = matches!(job.status.as_str(), "completed" | "failed");
        if over || tokio::time::timeout_at(deadline, ended.changed()).await.map_or(true, |r| r.is_err()) {
            return Ok(Json(job));
        }
    }
}

pub async fn activity(_: ApiKeyQuiet, State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let last = st.last_activity.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "last_activity": last, "started": st.started }))
}

/// `GET /api/projects/{id}/findings` (extension): one page of findings as JSON.
pub async fn findings(
    _: ApiKey,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project_id = id_param(id)?;
    let per_page = q.per_page.as_deref().and_then(|p| p.parse().ok()).unwrap_or(200i64).clamp(1, 5000);
    let (filter, (sort, dir), start) = (q.filter(), q.sort(), q.start());
    let res = st
        .with_db(move |c| {
            if projects::get(c, project_id)?.is_none() {
                return Ok(None);
            }
            listing::page(c, project_id, &filter, sort, dir, &start, per_page).map(Some)
        })
        .await?;
    let p = res.ok_or(ApiError::NotFound("project"))?;
    Ok(Json(json!({ "total": p.total, "page": p.number, "pages": p.pages, "next": p.next, "findings": p.rows })))
}
