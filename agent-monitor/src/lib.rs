//! agent-monitor: holds the persistent `project.viewer` locks and the lifecycle of every
//! viewer instance, serves XML-RPC at `POST /RPC2`, launches `vruntask` jobs, and expires
//! jobs that stop heartbeating.
//!
//! `main` only parses arguments; [`run`] is the daemon, so tests start the real server on
//! port 0.
//!
//! # Layout
//! - [`config`]: flags, environment and TOML settings; [`reload`]: what SIGHUP changes live.
//! - [`statedir`]: one daemon per state directory (fd-lock). [`modes`]: owner-only modes.
//! - [`store`]: SQLite (WAL, fsync per commit) with group commit; migrations from `sql/`;
//!   the in-memory map of live instances the writer keeps for the hottest reads.
//! - [`instances`]: the instance rows that are the locks; returns effects, never acts.
//!   [`capacity`]: limits that make a launch wait for room, and admission when it frees.
//!   [`platforms`]: images validated in a scratch VM before launches use them.
//! - [`archives`]: stored viewer database versions.
//! - [`launcher`]: the `Launcher` trait and the local process launcher. [`private`]: random
//!   tokens and the 0600 files that hold them.
//! - [`hypervisor`]: the `Hypervisor` inventory trait and its libvirt implementation;
//!   [`nodes`]: what the hypervisor nodes' DomainMonitors last reported.
//! - [`daemon`]: the state every handler shares; carries out effects after commits.
//! - [`cmd`]: one file per XML-RPC method.
//! - [`edge`]: connections: deadlines, caps, accept back-off, shutdown deadline, one
//!   connection thread per core for `/RPC2`.
//! - [`rpc`]: the HTTP endpoint and its edge checks (XML-RPC text via `vrun_proto::wire`).
//!   [`auth`]: roles and credentials. [`rest`]: the JSON REST API, `/healthz` and
//!   `/metrics`, on the same listener; [`metrics`]: the counters behind `/metrics`.
//! - [`reaper`]: lease expiry. [`startup`]: start-up repair.
//! - [`sweep`]: reconciliation with the job system and the hypervisor (DomainMonitor);
//!   `vrun_proto::lifecycle` wakes it on libvirt lifecycle events. [`salvage`]: powering off, keeping
//!   and removing a domain no live instance holds; [`unstored`]: databases jobs could not
//!   store. [`idle`]: idle and lifetime shutdown. [`upkeep`]: pruning what ended instances
//!   leave behind.
//! - [`frontdoor`]: the listener browsers use: sign-in, proxy to each viewer, its pages.
//! - [`status`]: the `agent-monitor status` admin command; [`rotate`]: `rotate-secrets`;
//!   [`platform_cli`]: `platform add|list|remove`.

pub mod archives;
pub mod auth;
pub mod capacity;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod edge;
pub mod frontdoor;
pub mod hypervisor;
pub mod idle;
pub mod instances;
pub mod launcher;
pub mod metrics;
pub mod modes;
pub mod nodes;
pub mod platform_check;
pub mod platform_cli;
pub mod platforms;
pub mod private;
pub mod reaper;
pub mod reload;
pub mod rest;
pub mod rotate;
pub mod rpc;
pub mod salvage;
pub mod shared;
pub mod startup;
pub mod statedir;
pub mod status;
pub mod store;
pub mod sweep;
pub mod unstored;
pub mod upkeep;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::archives::ArchiveSettings;
use crate::config::Resolved;
use crate::daemon::{Daemon, Timing};
use crate::hypervisor::Hypervisor;
use crate::instances::JobContext;
use crate::launcher::{Launcher, ProcessLauncher};
use crate::salvage::Salvage;

/// A future boxed in this library. The daemon's code is compiled here once: a generic
/// `run`, or an `async fn` first polled by the binary, was compiled again, whole, into the
/// binary (the agent-monitor binary took longer to build than the library).
pub type Task<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What ends the daemon ([`shutdown_signal`] in `main`).
pub type Shutdown = Task<()>;

/// Runs the daemon on `listener` until `shutdown` completes. The caller holds the state
/// directory lock (see [`statedir::lock`]).
pub fn run(listener: TcpListener, cfg: Resolved, shutdown: Shutdown) -> Task<anyhow::Result<()>> {
    Box::pin(run_default(listener, cfg, shutdown))
}

/// [`run`] with the launcher and hypervisor the settings name.
async fn run_default(listener: TcpListener, cfg: Resolved, shutdown: Shutdown) -> anyhow::Result<()> {
    let monitor_id = statedir::monitor_id(&cfg.state_dir)?;
    let launcher: Arc<dyn Launcher> = match &cfg.slurm {
        Some(s) => Arc::new(launcher::slurm::SlurmLauncher::new(s.clone(), &monitor_id)),
        None if cfg.record_jobs => {
            tracing::warn!("launcher = record: jobs are recorded, never run (benchmarks and tests only)");
            Arc::new(launcher::record::RecordLauncher::new(&cfg.sub("jobs"))?)
        }
        None => Arc::new(ProcessLauncher::new(cfg.sub("jobs"), cfg.job_command.clone())?.fetching(cfg.fetch_jobs)),
    };
    let hv: Arc<dyn Hypervisor> = match cfg.libvirt_uri.as_str() {
        "none" => Arc::new(hypervisor::NoHypervisor),
        uri => Arc::new(hypervisor::Libvirt::new(uri, &monitor_id)),
    };
    run_with(listener, cfg, launcher, hv, shutdown).await
}

/// [`run`] with a chosen launcher and hypervisor.
pub async fn run_with(
    listener: TcpListener,
    cfg: Resolved,
    launcher: Arc<dyn Launcher>,
    hypervisor: Arc<dyn Hypervisor>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    modes::secure_state_dir(&cfg.state_dir, &cfg.db_path())
        .map_err(|e| anyhow::anyhow!("cannot secure state directory {}: {e}", cfg.state_dir.display()))?;
    archives::remove_leftovers(&cfg.sub("archives"));
    let store = store::Store::open(&cfg.db_path())?;
    let secrets = Arc::new(auth::Secrets::load_or_create(&cfg.state_dir)?);
    let monitor_id = statedir::monitor_id(&cfg.state_dir)?;
    let platform = cfg.platform.clone();
    let platform_sha256 =
        match tokio::task::spawn_blocking(move || vrun_proto::platform::checksum(std::path::Path::new(&platform)))
            .await?
        {
            Ok(sum) => Some(sum),
            Err(e) => {
                // Jobs then run whatever image their node has by that name, unchecked.
                tracing::warn!(platform = %cfg.platform, error = %e, "cannot checksum the platform image");
                None
            }
        };
    let job_ctx = JobContext {
        monitor_id: monitor_id.clone(),
        platform: cfg.platform.clone(),
        platform_sha256,
        memory_mib: cfg.memory_mib,
        vcpus: cfg.vcpus,
        agent_monitor_url: cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}/RPC2")),
        heartbeat_secs: cfg.heartbeat.as_secs(),
        start_grace_ms: cfg.start_grace.as_millis() as i64,
        secrets: Arc::clone(&secrets),
        capacity: Arc::new(shared::Shared::new(cfg.capacity.clone())),
    };
    let archives = ArchiveSettings { dir: cfg.sub("archives"), keep: cfg.archives_keep };
    let salvage =
        Salvage::new(store.clone(), Arc::clone(&hypervisor), archives.clone(), cfg.salvage_timeout, monitor_id.clone());
    let front_door = match cfg.front_door.clone() {
        Some(s) => Some(Arc::new(frontdoor::FrontDoor::new(s, &cfg.state_dir, store.clone())?)),
        None => None,
    };
    let daemon = Arc::new(Daemon {
        rt: tokio::runtime::Handle::current(),
        front_door: front_door.clone(),
        starter: Default::default(),
        renewals: Default::default(),
        store,
        launcher,
        hypervisor,
        job_ctx,
        timing: Timing {
            lease: cfg.lease,
            reap_every: cfg.reap_every,
            cancel_grace: cfg.cancel_grace,
            push_timeout: std::time::Duration::from_secs(600),
            sweep_every: cfg.sweep_every,
            orphan_grace: cfg.orphan_grace,
            launch_deadline: cfg.launch_deadline,
            stop_deadline: cfg.stop_deadline,
            limits: Arc::new(shared::Shared::new(cfg.limits.clone())),
            retention: Arc::new(shared::Shared::new(cfg.retention)),
            job_key_grace: cfg.job_key_grace,
        },
        archives,
        salvage,
        nodes: Default::default(),
        jobs_dir: cfg.sub("jobs"),
        platform_check: cfg.launchviewer.clone().map(|launchviewer| platforms::CheckSettings {
            launchviewer,
            agent_monitor_url: cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}/RPC2")),
            launcher_secret: auth::secret_path(&cfg.state_dir, "launcher"),
            timeout: cfg.platform_check_timeout,
        }),
    });
    daemon.launcher.prepare_hosts(&cfg.platform);
    startup::renew_leases(&daemon).await?;
    platform_check::resume(&daemon).await;
    let repairer = {
        let m = Arc::clone(&daemon);
        tokio::spawn(async move {
            if let Err(e) = startup::repair(&m).await {
                tracing::error!(error = %e, "start-up repair failed; the sweep will retry what it can");
            }
        })
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn(reaper::run(Arc::clone(&daemon), stop_rx.clone()));
    let wake = Arc::new(tokio::sync::Notify::new());
    if cfg.libvirt_uri != "none" {
        vrun_proto::lifecycle::spawn(cfg.libvirt_uri.clone(), Arc::clone(&wake));
    }
    let sweeper = tokio::spawn(sweep::run(Arc::clone(&daemon), wake, stop_rx.clone()));
    let idler = tokio::spawn(idle::run(Arc::clone(&daemon), stop_rx.clone()));
    let upkeeper = tokio::spawn(upkeep::run(Arc::clone(&daemon), stop_rx.clone()));
    let reloader = tokio::spawn(reload::run(Arc::clone(&daemon), cfg.clone(), stop_rx));
    // One shutdown for both listeners; it also ends long answers (event streams) at once.
    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    let app = rpc::router(cmd::Methods::new(Arc::clone(&daemon)), Arc::clone(&secrets), cfg.body.clone())
        .merge(rest::router(Arc::clone(&daemon), secrets, down_rx.clone()));
    tracing::info!(%addr, state_dir = %cfg.state_dir.display(), %monitor_id, "agent-monitor serving XML-RPC at /RPC2 and REST at /api/v1");
    let front = match &front_door {
        Some(fd) => {
            let listener = TcpListener::bind(fd.settings.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on front_door_listen {}: {e}", fd.settings.listen))?;
            tracing::info!(addr = %listener.local_addr()?, url = %fd.settings.url, "front door serving");
            let mut rx = down_rx.clone();
            let (router, limits, tls) = (fd.router(), fd.settings.edge.clone(), fd.tls.clone());
            Some(tokio::spawn(edge::serve_tls(listener, router, limits, tls, async move {
                let _ = rx.wait_for(|d| *d).await;
            })))
        }
        None => None,
    };
    let mut rx = down_rx;
    let rpc = edge::serve(listener, app, cfg.edge.clone(), async move {
        let _ = rx.wait_for(|d| *d).await;
    });
    tokio::pin!(rpc);
    tokio::select! {
        _ = &mut rpc => {}
        _ = shutdown => {
            let _ = down_tx.send(true);
            rpc.await;
        }
    }
    let _ = down_tx.send(true);
    if let Some(f) = front {
        let _ = f.await;
    }
    daemon.salvage.stop();
    let _ = stop_tx.send(true);
    // Each of these ends at its next await once told to; start-up repair may be long, and
    // whatever it has not done is done again at the next start.
    let grace = cfg.edge.shutdown_grace;
    for task in [repairer, reaper, sweeper, idler, upkeeper, reloader] {
        if tokio::time::timeout(grace, task).await.is_err() {
            tracing::warn!(
                "a background task did not stop within the shutdown deadline; the next start redoes its work"
            );
        }
    }
    tracing::info!("agent-monitor stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
