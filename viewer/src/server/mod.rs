//! The HTTP server: state, routes, startup and graceful shutdown.
//!
//! Every route lives under the context path (`/proxy-<uuid>`), which the routes spell out
//! in full rather than through `Router::nest`, so `{ctx}/` and `{ctx}` behave exactly as
//! written. `/api/...` is for the system key (the results pusher), the pages are for the
//! users the front end names; neither credential opens the other side (see `auth.rs`).

mod api;
mod auth;
mod csrf;
mod error;
mod export;
mod headers;
mod html;
mod jobs;
mod markdown;
mod pages;
mod query;
mod upload_body;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{delete, get, post};
use axum::Router;
use rusqlite::Connection;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::archive::{lock_data_dir, ArchiveError};
use crate::config::Config;
use crate::db::{now, Db, DbError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("another viewer is already serving {0}")]
    Busy(PathBuf),
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Shared by all handlers.
pub(crate) struct AppState {
    config: Config,
    db: Db,
    /// Unix seconds of process start and of the last authenticated request.
    started: i64,
    last_activity: AtomicI64,
    /// One import at a time: SQLite has one writer anyway, and this bounds the memory
    /// and disk two large concurrent imports would take.
    imports: Semaphore,
    shutting_down: AtomicBool,
    uploads_dir: PathBuf,
    /// Key of the page forms' CSRF tokens.
    csrf: csrf::CsrfKey,
    /// Bumped whenever an import job ends: `GET /api/jobs/{id}?wait=S` waits on it.
    jobs_ended: tokio::sync::watch::Sender<u64>,
}

impl AppState {
    fn touch(&self) {
        self.last_activity.store(now(), Ordering::Relaxed);
    }

    /// Runs blocking database work on a fresh connection off the async threads.
    async fn with_db<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&mut db.connect()?))
            .await
            .map_err(|e| DbError::Io(std::io::Error::other(e)))?
    }
}

/// A server whose database is open and whose data directory is locked, not yet serving.
pub struct Server {
    state: Arc<AppState>,
    _lock: std::fs::File,
}

impl Server {
    /// Locks the data directory, opens (and migrates) the database, and cleans up what a
    /// previous process may have left: orphaned jobs and upload scratch files.
    pub fn open(config: Config) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?.ok_or_else(|| ServeError::Busy(config.data_dir.clone()))?;
        let db = Db::open(&config.data_dir)?;
        let orphaned = crate::db::projects::fail_orphaned_jobs(&db.connect()?)?;
        if orphaned > 0 {
            tracing::warn!(orphaned, "marked jobs of a previous run as failed");
        }
        let uploads_dir = config.data_dir.join("uploads");
        if uploads_dir.exists() {
            std::fs::remove_dir_all(&uploads_dir)?;
        }
        std::fs::create_dir_all(&uploads_dir)?;
        let t = now();
        let state = AppState {
            config,
            db,
            started: t,
            last_activity: AtomicI64::new(t),
            imports: Semaphore::new(1),
            shutting_down: AtomicBool::new(false),
            uploads_dir,
            csrf: csrf::CsrfKey::random(),
            jobs_ended: tokio::sync::watch::Sender::new(0),
        };
        Ok(Server { state: Arc::new(state), _lock: lock })
    }

    /// Serves until `shutdown` resolves, then waits for a running import to finish (so
    /// its job ends `completed` or `failed`, never stuck at `running`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = router(self.state.clone());
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
        self.state.shutting_down.store(true, Ordering::SeqCst);
        // The semaphore is fair: queued jobs get it first, see the flag and fail fast.
        let _permit = self.state.imports.acquire().await;
        Ok(())
    }
}

/// Opens the data directory and serves on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::open(config)?.serve(listener, shutdown).await
}

fn router(state: Arc<AppState>) -> Router {
    let c = state.config.context.clone();
    // The upload handler holds the body to its limit itself (see upload_body.rs).
    let upload_limit = DefaultBodyLimit::disable();
    let mut r = Router::new()
        .route(&format!("{c}/api/projects"), get(api::list_projects).put(api::create_project))
        .route(&format!("{c}/api/projects/{{id}}"), delete(api::delete_project))
        .route(&format!("{c}/api/projects/{{id}}/analysis"), post(api::analysis).layer(upload_limit))
        .route(&format!("{c}/api/projects/{{id}}/findings"), get(api::findings))
        .route(&format!("{c}/api/jobs/{{id}}"), get(api::job))
        .route(&format!("{c}/api/activity"), get(api::activity))
        .route(&format!("{c}/"), get(pages::index))
        .route(&format!("{c}/local-time.js"), get(headers::local_time_js))
        // Each page answers with and without a trailing slash (people and tools add one).
        .route(&format!("{c}/projects/{{id}}"), get(pages::project))
        .route(&format!("{c}/projects/{{id}}/"), get(pages::project))
        .route(&format!("{c}/projects/{{id}}/triage"), post(pages::bulk_triage))
        .route(&format!("{c}/projects/{{id}}/source"), get(pages::source_file))
        .route(&format!("{c}/projects/{{id}}/export.csv"), get(export::csv_export))
        .route(&format!("{c}/projects/{{id}}/export.sarif"), get(export::sarif_export))
        .route(&format!("{c}/findings/{{id}}"), get(pages::finding).post(pages::triage))
        .route(&format!("{c}/findings/{{id}}/"), get(pages::finding));
    if !c.is_empty() {
        let to = format!("{c}/");
        r = r.route(&c, get(move || async move { Redirect::permanent(&to) }));
    }
    r.fallback(api::not_found).layer(axum::middleware::map_response(headers::secure)).with_state(state)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
