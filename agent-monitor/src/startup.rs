//! Start-up repair: nothing is forgotten across a restart (SWAMP deleted its state file).
//!
//! Every live instance is checked against the launcher:
//! - its job runs → adopted, with a fresh lease so it can reach the new daemon;
//! - its job never started (the daemon died between commit and spawn) → started now;
//! - its job started and is gone → failed with the reason, pair freed.
//!
//! Serving does not wait for these checks (one lock probe per live instance: at 10,000
//! viewers, most of a second). Before serving, [`renew_leases`] gives every live instance a
//! fresh lease in one statement, so that nothing is reaped merely because its job could not
//! reach a daemon that was down; [`repair`] then runs beside the requests. Meanwhile a live
//! instance answers as it was recorded, which is what it was when the daemon stopped.

use std::sync::Arc;

use vrun_proto::{RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances::{self, Effect, ItsJob};
use crate::launcher::JobProbe;
use crate::store::{now_ms, LIVE};

/// One statement: every live instance gets at least a full lease from now.
pub async fn renew_leases(m: &Arc<Daemon>) -> Result<(), RpcError> {
    let until = now_ms() + m.timing.lease.as_millis() as i64;
    // Leases are not in the live map: nothing to read back (see `write_unmapped`).
    m.store
        .write_unmapped(move |c| {
            c.prepare_cached(&format!("UPDATE instances SET lease_until_ms = max(lease_until_ms, ?1) WHERE {LIVE}"))?
                .execute([until])?;
            Ok(())
        })
        .await
}

/// Checks every live instance against the launcher: adopts, starts or fails it. Generations
/// only are held for all of them (8 bytes each); rows are read and changed a page per
/// transaction, so that 100,000 live instances neither hold 100,000 rows in memory nor keep
/// the writer (and every launch behind it) in one long transaction.
pub async fn repair(m: &Arc<Daemon>) -> Result<(), RpcError> {
    let live = m.store.read(instances::live_generations).await?;
    if live.is_empty() {
        return Ok(());
    }
    let launcher = Arc::clone(&m.launcher);
    let (live, probes): (Vec<i64>, Vec<JobProbe>) = tokio::task::spawn_blocking(move || {
        let probes = launcher.probe_all(&live);
        (live, probes)
    })
    .await
    .map_err(|e| RpcError::new(vrun_proto::FaultCode::Internal, e.to_string()))?;
    let (mut adopted, mut started, mut failed) = (0, 0, 0);
    for (gens, probes) in live.chunks(instances::PAGE).zip(probes.chunks(instances::PAGE)) {
        let page: Vec<(i64, JobProbe)> = gens.iter().copied().zip(probes.iter().cloned()).collect();
        let (effects, counts) = repair_page(m, page).await?;
        adopted += counts.0;
        started += counts.1;
        failed += counts.2;
        m.apply(effects);
    }
    tracing::info!(adopted, started, failed, "restored live instances");
    let ctx = m.job_ctx.clone();
    let effects = m.store.write(move |c| crate::instances::admit(c, &ctx, now_ms())).await?;
    m.apply(effects);
    Ok(())
}

/// One page of [`repair`] in one transaction: its effects and (adopted, started, failed).
async fn repair_page(
    m: &Arc<Daemon>,
    probes: Vec<(i64, JobProbe)>,
) -> Result<(Vec<Effect>, (usize, usize, usize)), RpcError> {
    let ctx = m.job_ctx.clone();
    let lease_ms = m.timing.lease.as_millis() as i64;
    m.store
        .write(move |c| {
            let now = now_ms();
            let mut effects = Vec::new();
            let (mut adopted, mut started, mut failed) = (0, 0, 0);
            for (generation, probe) in probes {
                let Some(mut inst) = instances::by_generation(c, generation)?.filter(|i| !i.state.is_terminal()) else {
                    continue;
                };
                if inst.waiting {
                    // Never started: it keeps its place in line (admitted below if room).
                    continue;
                }
                match probe {
                    JobProbe::Running { .. } => {
                        instances::set_lease(c, generation, now + lease_ms)?;
                        adopted += 1;
                    }
                    // Still in the batch queue: adopted, its start lease begins when it runs.
                    JobProbe::Queued { reason } => {
                        instances::mark_queued(
                            c,
                            generation,
                            &crate::sweep::queued_reason(&reason),
                            now + ctx.start_grace_ms,
                        )?;
                        adopted += 1;
                    }
                    JobProbe::NotRunning if inst.job_started_ms.is_none() && inst.state == ViewerState::Launching => {
                        instances::set_lease(c, generation, now + ctx.start_grace_ms)?;
                        effects.push(Effect::StartJob(generation));
                        started += 1;
                    }
                    JobProbe::NotRunning | JobProbe::Ended { .. } => {
                        let reason = match probe {
                            JobProbe::Ended { reason } => {
                                format!("its job ended while agent-monitor was down: {reason}")
                            }
                            _ => format!("job of generation {generation} was gone when agent-monitor started"),
                        };
                        effects.extend(instances::finish(
                            c,
                            &mut inst,
                            ViewerState::Failed,
                            &reason,
                            &ctx,
                            now,
                            ItsJob::Leave,
                        )?);
                        failed += 1;
                    }
                }
            }
            Ok((effects, (adopted, started, failed)))
        })
        .await
}
