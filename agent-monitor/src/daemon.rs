//! The core: the state every request handler shares, and how decisions become actions.
//!
//! Handlers decide inside a store transaction and return [`Effect`]s; [`Daemon::apply`]
//! carries them out after the commit, so a job is never started for a lock that was not
//! durably taken.

use std::sync::Arc;
use std::time::Duration;

use crate::instances::{self, Effect, ItsJob, JobContext};
use crate::launcher::Launcher;
use crate::salvage::Salvage;
use crate::store::{now_ms, Store};

/// Lease and timing settings.
#[derive(Debug, Clone)]
pub struct Timing {
    /// A job that has not heartbeated for this long loses its lease.
    pub lease: Duration,
    /// How often the reaper looks for expired leases.
    pub reap_every: Duration,
    /// SIGTERM-to-SIGKILL grace when cancelling a job.
    pub cancel_grace: Duration,
    /// A push claim older than this is taken to be abandoned.
    pub push_timeout: Duration,
    /// Reconciliation: how often, and how long things may look wrong before acting.
    pub sweep_every: Duration,
    pub orphan_grace: Duration,
    pub launch_deadline: Duration,
    pub stop_deadline: Duration,
    pub limits: Arc<crate::shared::Shared<crate::config::Limits>>,
    /// How long an ended instance's job files, log and history are kept ([`crate::upkeep`]).
    pub retention: Arc<crate::shared::Shared<Duration>>,
    /// How long a rotated-out job key is still accepted (running jobs hold its tokens).
    pub job_key_grace: Duration,
}

pub struct Daemon {
    /// The daemon's own runtime. Background work (a launch's effects, state-changing calls)
    /// is spawned here by handle: requests are served on the connection threads of
    /// [`crate::edge`], whose runtimes are only for answering.
    pub rt: tokio::runtime::Handle,
    /// Where job starts are queued (see [`Daemon::apply`]).
    pub starter: std::sync::OnceLock<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    /// Lease renewals (generation → lease end, ms) of heartbeats that the store could not
    /// commit; the reaper writes them before it looks for expired leases.
    pub renewals: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
    pub store: Store,
    pub launcher: Arc<dyn Launcher>,
    pub hypervisor: Arc<dyn crate::hypervisor::Hypervisor>,
    pub job_ctx: JobContext,
    pub timing: Timing,
    pub archives: crate::archives::ArchiveSettings,
    pub salvage: Salvage,
    /// What each hypervisor node's DomainMonitor last reported.
    pub nodes: crate::nodes::NodeReports,
    /// `<state>/jobs`: job files, and output disks jobs could not store ([`crate::unstored`]).
    pub jobs_dir: std::path::PathBuf,
    /// The front door, when one is configured (it mints logins for `viewerLogin`).
    pub front_door: Option<Arc<crate::frontdoor::FrontDoor>>,
    /// How platform checks run ([`crate::platforms`]); `None` without a launchviewer.
    pub platform_check: Option<crate::platforms::CheckSettings>,
}

impl Daemon {
    /// Carries out effects in the background; failures are recorded on the instance.
    ///
    /// Job starts go to one dedicated thread, in order: spawns are serialised anyway (see
    /// launcher.rs), and handing thousands of them to tokio's blocking pool grew it to 512
    /// threads (most of the daemon's memory) and made reads wait behind them. The queue holds
    /// generations only; each job description is built when its start comes up, because a
    /// burst of launches outruns job starts twentyfold and 10,000 queued descriptions were a
    /// third of the daemon's peak memory (docs/performance.md).
    pub fn apply(self: &Arc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            let me = Arc::clone(self);
            match effect {
                Effect::StartJob(_) => {
                    crate::metrics::global().launches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let handle = self.rt.clone();
                    let job = Box::new(move || {
                        let _rt = handle.enter();
                        me.apply_one(effect)
                    });
                    if let Err(e) = self.starter().send(job) {
                        tracing::error!(error = %e, "job starter is gone");
                    }
                }
                Effect::CancelJob(_) => {
                    self.rt.spawn_blocking(move || me.apply_one(effect));
                }
            }
        }
    }

    /// Runs `f` in the next store transaction and carries out the effects it returns, in a
    /// task of its own: a caller that goes away meanwhile (a client closing its connection
    /// mid-call drops the handler) must not leave a committed launch without its job start.
    /// The scale bench found 187 of 10,000 launches so, when wrk closed its connections; they
    /// waited in `launching` with no job until the launch deadline failed them.
    pub async fn decide<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Connection) -> crate::store::Db<(T, Vec<Effect>)> + Send + 'static,
    ) -> Result<T, vrun_proto::RpcError> {
        let me = Arc::clone(self);
        self.rt
            .spawn(async move {
                let (answer, effects) = me.store.write(f).await?;
                me.apply(effects);
                Ok(answer)
            })
            .await
            .map_err(|e| vrun_proto::RpcError::new(vrun_proto::FaultCode::Internal, e.to_string()))?
    }

    /// The queue of the thread that starts jobs (created on first use).
    fn starter(&self) -> &std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>> {
        self.starter.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
            let spawned = std::thread::Builder::new().name("job-starter".into()).spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the job starter thread");
            }
            tx
        })
    }

    fn apply_one(self: &Arc<Self>, effect: Effect) {
        match effect {
            Effect::StartJob(generation) => {
                let started = match self.store.read_blocking(|c| instances::by_generation(c, generation)) {
                    Ok(Some(inst)) if !inst.state.is_terminal() => {
                        let still_current = || match self
                            .store
                            .read_blocking(|c| instances::by_generation(c, generation))
                        {
                            Ok(i) => i.is_some_and(|i| !i.state.is_terminal()),
                            Err(e) => {
                                tracing::warn!(generation, error = %e.message, "cannot re-check the generation; not starting its job");
                                false
                            }
                        };
                        self.launcher
                            .start(&instances::job_spec(&inst, &self.job_ctx), &still_current)
                            .map_err(|e| e.to_string())
                    }
                    // Ended while its start waited (aborted, or failed by the reaper): its lock
                    // is released, so no job may run for it.
                    Ok(_) => {
                        tracing::info!(generation, "not starting the job of a generation that has ended");
                        return;
                    }
                    Err(e) => Err(format!("cannot read the instance: {}", e.message)),
                };
                let me = Arc::clone(self);
                let counter = match &started {
                    Ok(_) => &crate::metrics::global().job_starts,
                    Err(_) => &crate::metrics::global().job_start_failures,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match started {
                    Ok(job_id) => {
                        // Not awaited by anyone: losing it in a crash only means a restart
                        // re-probes the job lock, which is the real truth anyway.
                        self.rt.spawn(async move {
                            let _ = me
                                .store
                                .write(move |c| instances::mark_job_started(c, generation, now_ms(), job_id.as_deref()))
                                .await;
                        });
                    }
                    Err(e) => {
                        tracing::error!(generation, error = %e, "cannot start job");
                        let reason = format!("job could not be started: {e}");
                        self.rt.spawn(async move { me.fail_generation(generation, reason, ItsJob::Leave).await });
                    }
                }
            }
            Effect::CancelJob(generation) => {
                self.launcher.cancel(generation, self.timing.cancel_grace);
                // The job is gone; a VM it left behind must not outlive the lock it lost. It is
                // salvaged like any orphan: power button, keep its database, remove it.
                let me = Arc::clone(self);
                self.rt.spawn(async move { me.salvage.generation(generation).await });
            }
        }
    }

    /// Fails a generation if it still holds its pair (used by the reaper and on errors).
    pub async fn fail_generation(self: &Arc<Self>, generation: i64, reason: String, job: ItsJob) {
        let ctx = self.job_ctx.clone();
        let result = self
            .store
            .write(move |c| {
                let Some(mut inst) = instances::by_generation(c, generation)?.filter(|i| !i.state.is_terminal()) else {
                    return Ok(Vec::new());
                };
                instances::finish(c, &mut inst, vrun_proto::ViewerState::Failed, &reason, &ctx, now_ms(), job)
            })
            .await;
        match result {
            Ok(effects) => self.apply(effects),
            Err(e) => tracing::error!(generation, error = %e, "cannot record failure"),
        }
    }
}
