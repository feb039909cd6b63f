//! Lease enforcement: a job that stops heartbeating loses its pair.

use std::sync::Arc;

use vrun_proto::ViewerState;

use crate::daemon::Daemon;
use crate::instances::{self, ItsJob};
use crate::store::now_ms;

/// Fails every live instance whose lease ran out, cancels its job, and frees its pair.
pub async fn reap_once(m: &Arc<Daemon>) {
    let ctx = m.job_ctx.clone();
    let renewals: Vec<(i64, i64)> =
        m.renewals.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(g, u)| (*g, *u)).collect();
    let written = renewals.clone();
    let result = m
        .store
        .write(move |c| {
            // Renewals the store could not commit are written first, in the same transaction:
            // while it cannot commit, nothing expires; once it can, no lease kept alive in
            // memory is taken for lost.
            for (generation, until) in &written {
                instances::extend_lease(c, *generation, *until)?;
            }
            let now = now_ms();
            let mut effects = Vec::new();
            for mut inst in instances::expired(c, now)? {
                let late = (now - inst.lease_until_ms) / 1000;
                let reason = format!(
                    "lease expired: no heartbeat from the job of generation {} (state {}, {}s past its lease)",
                    inst.generation, inst.state, late
                );
                tracing::warn!(pair = %inst.pair, generation = inst.generation, %reason, "reaping");
                effects.extend(instances::finish(
                    c,
                    &mut inst,
                    ViewerState::Failed,
                    &reason,
                    &ctx,
                    now,
                    ItsJob::Cancel,
                )?);
            }
            Ok(effects)
        })
        .await;
    match result {
        Ok(effects) => {
            let mut pending = m.renewals.lock().unwrap_or_else(|p| p.into_inner());
            for (generation, until) in renewals {
                if pending.get(&generation) == Some(&until) {
                    pending.remove(&generation);
                }
            }
            drop(pending);
            m.apply(effects)
        }
        Err(e) => tracing::error!(error = %e, "reaper pass failed"),
    }
}

pub async fn run(m: Arc<Daemon>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(m.timing.reap_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => reap_once(&m).await,
            _ = shutdown.changed() => return,
        }
    }
}
