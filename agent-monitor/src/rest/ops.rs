//! For operators' tools: `/healthz` (no credentials), `/metrics` (admin or the metrics
//! role), and the OpenAPI description of the REST API.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use vrun_proto::FaultCode;

use super::{ApiError, Rest};
use crate::auth::Caller;

const OPENAPI: &str = include_str!("openapi.json");

/// 200 when the store answers a read; 503 otherwise. Says nothing else, so it needs no
/// credentials (load balancers, `curl -f`).
pub async fn healthz(State(r): State<Arc<Rest>>) -> Response {
    match r.daemon.store.read(|c| Ok(c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?)).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {}\n", e.message)).into_response(),
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Prometheus text: the process's counters ([`crate::metrics`]) and what the store says
/// now (viewers by state, failed instances by reason, launches waiting in a queue).
pub async fn metrics(State(r): State<Arc<Rest>>, headers: HeaderMap) -> Result<Response, ApiError> {
    match r.caller(&headers)? {
        Caller::Admin | Caller::Metrics => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                FaultCode::NotAuthorised,
                "not authorised: /metrics is for the admin and metrics roles",
            ))
        }
    }
    let (by_state, failures, waiting) = r
        .daemon
        .store
        .read(|c| {
            let mut s = c.prepare_cached(
                "SELECT state, count(*) FROM instances
                 WHERE generation IN (SELECT max(generation) FROM instances GROUP BY project, viewer)
                 GROUP BY state",
            )?;
            let by_state = s
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut f = c.prepare_cached("SELECT reason FROM instances WHERE state = 'failed'")?;
            let mut failures = std::collections::BTreeMap::<&'static str, i64>::new();
            for reason in f.query_map([], |r| r.get::<_, String>(0))? {
                *failures.entry(failure_class(&reason?)).or_default() += 1;
            }
            let waiting: i64 = c.query_row(
                "SELECT count(*) FROM instances WHERE state = 'launching' AND (waiting = 1 OR reason LIKE 'waiting for %')",
                [],
                |r| r.get(0),
            )?;
            Ok((by_state, failures, waiting))
        })
        .await?;
    let mut out = String::with_capacity(4096);
    let _ =
        writeln!(out, "# HELP vrun_viewers Pairs by the state of their newest instance.\n# TYPE vrun_viewers gauge");
    for st in vrun_proto::ViewerState::ALL {
        let n = by_state.iter().find(|(s, _)| s == st.as_str()).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "vrun_viewers{{state=\"{st}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP vrun_failures Failed instances in the store, by kind of reason.\n# TYPE vrun_failures gauge"
    );
    for (class, n) in &failures {
        let _ = writeln!(out, "vrun_failures{{reason=\"{class}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP vrun_launches_waiting Launches waiting for room (a job system's queue).\n# TYPE vrun_launches_waiting gauge\nvrun_launches_waiting {waiting}");
    crate::metrics::global().write(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// A failure reason's kind: a bounded label (the reasons themselves carry details).
fn failure_class(reason: &str) -> &'static str {
    const CLASSES: [(&str, &str); 9] = [
        ("lease", "lease_expired"),
        ("exited without reporting", "job_exited"),
        ("could not be started", "job_not_started"),
        ("stuck in", "stuck"),
        ("gone", "job_gone"),
        ("NODE_FAIL", "node_failure"),
        ("boot", "boot_timeout"),
        ("VRUNERROR", "viewer_error"),
        ("cannot start the VM", "vm_start"),
    ];
    CLASSES.iter().find(|(needle, _)| reason.contains(needle)).map_or("other", |(_, class)| class)
}
