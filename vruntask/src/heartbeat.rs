//! The job's heartbeat and its stop requests, on tasks of their own.
//!
//! Heartbeats start the moment vruntask has read its job and go on until the final report,
//! whatever the run is doing meanwhile: connecting to libvirt, building disks, waiting for a
//! slow `define`, saving the database. (A heartbeat sent from the run's own loop stopped for
//! as long as libvirt blocked it, and agent-monitor expired a healthy job's lease.)
//!
//! Everything that asks the run to end — agent-monitor (`continue = false`, a stale
//! generation), SIGTERM from the reaper or an admin, SIGINT — becomes one [`Stop`] value the
//! run checks between its steps and waits on while it watches the VM. The first reason wins.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vrun_proto::client::ClientError;
use vrun_proto::FaultCode;

use crate::report::Reporter;

/// Why the run is asked to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Someone asked (abortViewer, a stale generation, SIGTERM): stop gracefully.
    Requested(String),
    /// agent-monitor refused a report in a way that ends the run.
    Failure(String),
}

/// The run's view of stop requests.
#[derive(Clone)]
pub struct Stop(watch::Receiver<Option<StopReason>>);

impl Stop {
    /// The stop reason, if one was given.
    pub fn get(&self) -> Option<StopReason> {
        self.0.borrow().clone()
    }

    /// Completes when a stop is requested (at once if it already was).
    pub async fn wait(&mut self) -> StopReason {
        loop {
            if let Some(r) = self.get() {
                return r;
            }
            if self.0.changed().await.is_err() {
                // Every sender is gone: nothing will ever ask again.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Sets the stop reason unless one is set already.
#[derive(Clone)]
struct Trigger(Arc<watch::Sender<Option<StopReason>>>);

impl Trigger {
    fn fire(&self, why: StopReason) {
        self.0.send_if_modified(|cur| {
            if cur.is_none() {
                tracing::info!(?why, "stop requested");
                *cur = Some(why);
                true
            } else {
                false
            }
        });
    }
}

/// The heartbeat and signal tasks; dropping it stops them.
pub struct Beater {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Beater {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts heartbeating every `every` (the first one at once) and listening for SIGTERM and
/// SIGINT. Call inside the runtime.
pub fn start(rep: Arc<Reporter>, every: Duration) -> (Beater, Stop) {
    let (tx, rx) = watch::channel(None);
    let trigger = Trigger(Arc::new(tx));
    let beats = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match rep.heartbeat().await {
                    Ok(true) => {}
                    Ok(false) => trigger.fire(StopReason::Requested("agent-monitor asked the viewer to stop".into())),
                    Err(e) if crate::report::retryable(&e) => {
                        // agent-monitor may be restarting, or its disk full; the viewer keeps
                        // serving meanwhile.
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                    Err(e) => trigger.fire(stop_for_report_error(e)),
                }
            }
        })
    };
    // Registered before returning: a SIGTERM from now on is a stop request, never the
    // default action that would kill the job with its domain and files left behind.
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let signals = tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (term, int) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        tokio::select! {
            _ = term.recv() => trigger.fire(StopReason::Requested("SIGTERM".into())),
            _ = int.recv() => trigger.fire(StopReason::Requested("SIGINT".into())),
        }
    });
    (Beater { tasks: vec![beats, signals] }, Stop(rx))
}

/// What a refused report means for the run.
pub fn stop_for_report_error(e: ClientError) -> StopReason {
    match e.fault_code() {
        Some(FaultCode::StaleGeneration) | Some(FaultCode::UnknownInstance) | Some(FaultCode::IllegalTransition) => {
            StopReason::Requested(format!("this generation is no longer current: {e}"))
        }
        _ => StopReason::Failure(format!("agent-monitor refused a report: {e}")),
    }
}
