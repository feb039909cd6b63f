//! A pair's data: export its newest stored database, delete all of them, read its job's log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vrun_proto::methods::{self as m, DeleteViewerDbs};
use vrun_proto::FaultCode;

use super::viewers::pair;
use super::{ApiError, Rest};
use crate::{archives, instances};

/// How much of a job's log one request returns: its end.
const LOG_TAIL: u64 = 1 << 20;
/// Export streams the archive in pieces of this size.
const CHUNK: usize = 64 * 1024;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, FaultCode::Internal, e.to_string())
}

/// `GET …/export` (admin): the newest stored database as a tar stream (like SWAMP's
/// emitDataVolume) holding `<project>.<viewer>/g<generation>-<sha256>.archive` and a
/// `manifest.json`. Streamed from the file: a large database is never held in memory.
pub async fn export(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    r.admin(&headers, "export")?;
    let p = pair(&project, &viewer)?;
    let q = p.clone();
    let (newest, versions) =
        r.daemon.store.read(move |c| Ok((instances::newest_archive(c, &q)?, archives::list(c, &q)?))).await?;
    let Some(path) = newest else {
        return Err(ApiError::not_found(format!("no stored database of {p}")));
    };
    let file = tokio::fs::File::open(&path).await.map_err(internal)?;
    let size = file.metadata().await.map_err(internal)?.len();
    let name = std::path::Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (generation, checksum) = versions
        .iter()
        .find(|(_, g, sum, _)| name == format!("g{g}-{sum}.archive"))
        .map(|(_, g, sum, _)| (*g, sum.clone()))
        .unwrap_or_default();
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "project": p.project(), "viewer": p.viewer(), "generation": generation,
        "sha256": checksum, "size": size, "file": format!("{p}/{name}"),
    }))
    .map_err(internal)?;
    let mut head = Vec::with_capacity(2048 + manifest.len());
    head.extend(tar_header(&format!("{p}/manifest.json"), manifest.len() as u64)?);
    head.extend(&manifest);
    head.extend(padding(manifest.len() as u64));
    head.extend(tar_header(&format!("{p}/{name}"), size)?);
    let tail: Vec<u8> = padding(size).into_iter().chain(std::iter::repeat_n(0u8, 1024)).collect();
    // head, then the file in chunks (no more than `size` bytes, whatever happens to it), then tail.
    let state = (Some(head), file, size, Some(tail));
    let stream = futures_util::stream::unfold(state, |(head, mut file, left, tail)| async move {
        if let Some(h) = head {
            return Some((Ok(h), (None, file, left, tail)));
        }
        if left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            return match file.read(&mut buf).await {
                Ok(0) => {
                    Some((Err(std::io::Error::other("the archive shrank while it was read")), (None, file, 0, None)))
                }
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf), (None, file, left - n as u64, tail)))
                }
                Err(e) => Some((Err(e), (None, file, 0, None))),
            };
        }
        tail.map(|t| (Ok(t), (None, file, 0, None)))
    });
    let disposition = format!("attachment; filename=\"{}.g{generation}.tar\"", p);
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tar_header(path: &str, size: u64) -> Result<Vec<u8>, ApiError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(internal)?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h.as_bytes().to_vec())
}

fn padding(size: u64) -> Vec<u8> {
    vec![0u8; ((512 - size % 512) % 512) as usize]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    confirm: Option<String>,
}

/// `DELETE …/databases?confirm=<project>.<viewer>` (admin, `deleteViewerDbs`).
pub async fn delete_databases(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    Query(q): Query<Confirm>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = r.caller(&headers)?;
    let p = pair(&project, &viewer)?;
    let confirm = q.confirm.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            FaultCode::InvalidParams,
            format!("deleting every stored database of {p} needs ?confirm={p}; nothing was deleted"),
        )
    })?;
    let mut params = DeleteViewerDbs { pair: p }.to_params();
    if let Some(dxr::Value::Struct(s)) = params.first_mut() {
        s.insert("confirm".into(), dxr::Value::String(confirm));
    }
    let v = r.call(&caller, m::DELETE_VIEWER_DBS, params).await?;
    Ok(Json(serde_json::json!({ "deleted": super::to_json(&v) })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    generation: Option<i64>,
}

/// `GET …/log[?generation=N]` (admin): the end (up to 1 MiB) of the job's output so far,
/// like SWAMP's getExecutionStatus. Jobs of the local launcher log on this host; a batch
/// job's output is on its node, which the answer names.
pub async fn log(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    r.admin(&headers, "the job log")?;
    let p = pair(&project, &viewer)?;
    let (q2, wanted) = (p.clone(), q.generation);
    let inst = r
        .daemon
        .store
        .read(move |c| match wanted {
            Some(g) => Ok(instances::by_generation(c, g)?.filter(|i| i.pair == q2)),
            None => instances::latest(c, &q2),
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no such instance of {p}")))?;
    let path = r.daemon.jobs_dir.join(format!("g{}.log", inst.generation));
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let where_ = match (&inst.job_id, &inst.node) {
                (Some(job), Some(node)) => format!(": job {job} logs on node {node}"),
                _ => String::new(),
            };
            return Err(ApiError::not_found(format!("no log of {p} generation {} here{where_}", inst.generation)));
        }
        Err(e) => return Err(internal(e)),
    };
    let len = file.metadata().await.map_err(internal)?.len();
    file.seek(std::io::SeekFrom::Start(len.saturating_sub(LOG_TAIL))).await.map_err(internal)?;
    let mut text = Vec::new();
    file.take(LOG_TAIL).read_to_end(&mut text).await.map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], String::from_utf8_lossy(&text).into_owned())
        .into_response())
}
