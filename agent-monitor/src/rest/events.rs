//! `GET …/events`: a server-sent-events stream of a pair's state changes, like JupyterHub's
//! progress stream. First a `state` event with the whole record (`viewerStatus`), then one
//! `transition` event per history row as it is committed, including those of the next
//! generation when the pair is launched again. Same role as `viewerStatus`.
//!
//! Polls the store twice a second (a read connection; never the writer): a stream costs no
//! more than a client asking `viewerStatus` at that rate, and it cannot miss a row, because
//! it follows the history table, not a channel that could overflow. A stream ends when the
//! daemon shuts down or after [`MAX_STREAM`], whichever is first; clients reconnect.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use vrun_proto::methods as m;

use super::viewers::{call_on_pair, pair};
use super::{to_json, ApiError, Rest};
use crate::instances;

const POLL: Duration = Duration::from_millis(500);
const MAX_STREAM: Duration = Duration::from_secs(3600);

pub async fn stream(
    State(r): State<Arc<Rest>>,
    Path((project, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The role check and the first record, exactly as viewerStatus answers them.
    let first = call_on_pair(&r, &headers, &project, &viewer, m::VIEWER_STATUS).await?;
    let p = pair(&project, &viewer)?;
    let record = vrun_proto::methods::InstanceRecord::from_value(&first)?;
    let seen = (record.generation, record.history.len());
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    let _ = tx.send(Event::default().event("state").data(to_json(&first).to_string())).await;
    let (store, mut stopping) = (r.daemon.store.clone(), r.stopping.clone());
    tokio::spawn(async move {
        let (mut generation, mut count) = seen;
        let end = tokio::time::Instant::now() + MAX_STREAM;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopping.changed() => return,
                _ = tx.closed() => return,
            }
            if tokio::time::Instant::now() > end || *stopping.borrow() {
                return;
            }
            let q = p.clone();
            let Ok(Some((g, history))) = store
                .read(move |c| match instances::latest(c, &q)? {
                    Some(i) => Ok(Some((i.generation, instances::history(c, i.generation)?))),
                    None => Ok(None),
                })
                .await
            else {
                continue;
            };
            if g != generation {
                (generation, count) = (g, 0);
            }
            for t in history.iter().skip(count) {
                let data = serde_json::json!({
                    "generation": g, "at": t.at, "from": t.from, "to": t.to, "reason": t.reason,
                });
                if tx.send(Event::default().event("transition").data(data.to_string())).await.is_err() {
                    return;
                }
            }
            count = count.max(history.len());
        }
    });
    let events =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
