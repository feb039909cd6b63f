//! Background import jobs: queued → running → completed | failed.
//!
//! The upload is on disk before the job exists; the job runs the import on a blocking
//! thread and always ends in a final state with a message, then removes its files.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::AppState;
use crate::db::projects;
use crate::import::{self, Upload};

/// A random job id (16 hex digits).
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source is available");
    hex::encode(b)
}

async fn set(st: &AppState, id: &str, status: &'static str, message: String) {
    let id2 = id.to_owned();
    if let Err(e) = st.with_db(move |c| projects::set_job(c, &id2, status, &message)).await {
        tracing::error!(job = id, "cannot record job state {status}: {e}");
    }
}

pub async fn run(st: Arc<AppState>, id: String, project_id: i64, dir: PathBuf, uploads: Vec<Upload>) {
    let permit = st.imports.acquire().await;
    if permit.is_err() || st.shutting_down.load(Ordering::SeqCst) {
        set(&st, &id, "failed", "the viewer shut down before this import ran".into()).await;
    } else {
        set(&st, &id, "running", String::new()).await;
        let (db, limits, jid) = (st.db.clone(), st.config.limits.clone(), id.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = db.connect()?;
            import::import(&mut conn, project_id, &jid, &uploads, &limits)
        })
        .await;
        match outcome {
            Ok(Ok(summary)) => {
                tracing::info!(job = id, project_id, "{summary}");
                set(&st, &id, "completed", summary.to_string()).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(job = id, project_id, "import failed: {e}");
                // The client created the project for this upload: a first import that
                // failed leaves no empty package behind.
                match st.with_db(move |c| projects::delete_if_never_imported(c, project_id)).await {
                    Ok(true) => {
                        tracing::info!(job = id, project_id, "removed the project its failed first import left")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(job = id, "cannot remove the empty project: {e}"),
                }
                set(&st, &id, "failed", e.to_string()).await;
            }
            Err(e) => set(&st, &id, "failed", format!("internal error: {e}")).await,
        }
    }
    drop(permit);
    // Whoever waits on this job's status (`?wait=`) looks again now.
    st.jobs_ended.send_modify(|n| *n = n.wrapping_add(1));
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(job = id, "cannot remove {}: {e}", dir.display());
    }
}
