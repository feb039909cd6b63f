//! Reconciliation, SWAMP's DomainMonitor role: what agent-monitor believes is compared with
//! what the job system and the hypervisor say, and the hypervisor wins.
//!
//! Each sweep (every `sweep_every`, and at once when libvirt reports a lifecycle event):
//! - a live instance stuck in `launching`/`booting` past `launch_deadline`, or in `stopping`
//!   past `stop_deadline` → `failed`, its job cancelled;
//! - a live instance whose job was started and is no longer running → `failed` (its domain,
//!   if any, is then an orphan, below);
//! - a domain with vrun's metadata and no live instance of its generation, for longer than
//!   `orphan_grace` → salvaged: power button, wait for the guest to save, store the database
//!   if the guest saved one (an older generation's as an older version), then destroy and
//!   undefine it and remove its work directory (see [`crate::salvage`]);
//! - domains without vrun's metadata, or owned by another agent-monitor (their metadata
//!   names another id), are never touched.
//!
//! Every decision is logged with its reason and recorded in the instance's history.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vrun_proto::ViewerState;

use crate::daemon::Daemon;
use crate::hypervisor::VrunDomain;
use crate::instances::{self, ItsJob};
use crate::launcher::JobProbe;
use crate::store::now_ms;

/// What the sweeper remembers between sweeps.
#[derive(Default)]
pub struct SweepState {
    /// Orphaned domains and when they were first seen orphaned.
    orphans: Mutex<HashMap<String, Instant>>,
}

pub async fn run(m: Arc<Daemon>, wake: Arc<tokio::sync::Notify>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let st = Arc::new(SweepState::default());
    let mut tick = tokio::time::interval(m.timing.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {
                // Let a burst of events settle into one sweep.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = shutdown.changed() => return,
        }
        let began = std::time::Instant::now();
        sweep_once(&m, &st).await;
        crate::metrics::global().sweep_duration.observe(began.elapsed());
        crate::unstored::store_all(&m).await;
    }
}

fn deadline_reason(inst: &instances::Instance, t: &crate::daemon::Timing, now: i64) -> Option<String> {
    let since = |ms: i64| Duration::from_millis((now - ms).max(0) as u64);
    if inst.waiting {
        // No job yet: waiting for room is not being stuck.
        return None;
    }
    match inst.state {
        // From its job's start: a launch that waited for room has its whole deadline after.
        ViewerState::Launching | ViewerState::Booting
            if since(inst.job_started_ms.unwrap_or(inst.updated_ms)) > t.launch_deadline =>
        {
            Some(format!("stuck in {} for more than {} s", inst.state, t.launch_deadline.as_secs()))
        }
        ViewerState::Stopping if since(inst.updated_ms) > t.stop_deadline => {
            Some(format!("stuck in stopping for more than {} s", t.stop_deadline.as_secs()))
        }
        _ => None,
    }
}

/// What a user sees while the batch system holds the job in its queue.
pub fn queued_reason(slurm_reason: &str) -> String {
    format!("waiting for a free hypervisor: {slurm_reason}")
}

pub async fn sweep_once(m: &Arc<Daemon>, st: &Arc<SweepState>) {
    // Generations first (16 bytes each, with whether each job had started, read before the
    // probe so that a job started after it is not taken for one that exited), every probe in
    // one call (one `squeue` for a batch system), then the rows a page at a time: reading
    // every live row whole each sweep grew the daemon by 30 MB at 10,000 instances
    // (docs/performance.md).
    let Ok(jobs) = m.store.read(instances::live_jobs).await else { return };
    let now = now_ms();
    let launcher = Arc::clone(&m.launcher);
    let (jobs, probes) = tokio::task::spawn_blocking(move || {
        let generations: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let probes = launcher.probe_all(&generations);
        (jobs, probes)
    })
    .await
    .unwrap_or_default();
    for (jobs, probes) in jobs.chunks(instances::PAGE).zip(probes.chunks(instances::PAGE)) {
        let (first, last) = (jobs[0].0, jobs[jobs.len() - 1].0);
        let Ok(page) = m.store.read(move |c| instances::live_between(c, first, last)).await else { return };
        for inst in page {
            // Launched since the probes: the next sweep looks at it.
            let Ok(at) = jobs.binary_search_by_key(&inst.generation, |j| j.0) else { continue };
            sweep_instance(m, inst, &probes[at], jobs[at].1, now).await;
        }
    }
    let domains = match crate::hypervisor::inventory_within(&m.hypervisor).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "sweep: hypervisor unreachable; domains not checked");
            return;
        }
    };
    let Ok(live_now) = m.store.read(instances::live_generations).await else { return };
    let live_gens: HashSet<i64> = live_now.into_iter().collect();
    // Another agent-monitor's domains are never ours to judge: its generations are numbered
    // from 1 too, and "no live instance here" says nothing about its own database.
    let me = m.job_ctx.monitor_id.as_str();
    let orphans: Vec<VrunDomain> =
        domains.into_iter().filter(|d| d.owned_by(me) && !live_gens.contains(&d.generation)).collect();
    let due: Vec<VrunDomain> = {
        let mut seen = st.orphans.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|name, _| orphans.iter().any(|d| &d.name == name));
        orphans
            .into_iter()
            .filter(|d| seen.entry(d.name.clone()).or_insert_with(Instant::now).elapsed() >= m.timing.orphan_grace)
            .collect()
    };
    for d in due {
        let (m, st) = (Arc::clone(m), Arc::clone(st));
        tokio::spawn(async move {
            m.salvage.domain(&d).await;
            st.orphans.lock().unwrap_or_else(|p| p.into_inner()).remove(&d.name);
        });
    }
}

/// One live instance against what the launcher said of its job (`started`: its job had
/// been started before the launcher was asked).
async fn sweep_instance(m: &Arc<Daemon>, inst: instances::Instance, probe: &JobProbe, started: bool, now: i64) {
    let generation = inst.generation;
    match probe {
        JobProbe::Queued { reason } => {
            // Waiting for a hypervisor is not being stuck: no deadline, no lease expiry.
            let (why, lease) = (queued_reason(reason), now + m.job_ctx.start_grace_ms);
            let _ = m.store.write(move |c| instances::mark_queued(c, generation, &why, lease)).await;
            return;
        }
        JobProbe::Running { node: Some(node) } if inst.node.as_deref() != Some(node.as_str()) => {
            let node = node.clone();
            let _ = m.store.write(move |c| instances::set_node(c, generation, &node)).await;
        }
        JobProbe::Ended { reason } => {
            let why = format!("its job ended: {reason}");
            tracing::warn!(pair = %inst.pair, generation, reason = %why, "sweep: failing instance");
            m.fail_generation(generation, format!("sweep: {why}"), ItsJob::Cancel).await;
            return;
        }
        _ => {}
    }
    if let Some(why) = deadline_reason(&inst, &m.timing, now) {
        tracing::warn!(pair = %inst.pair, generation = inst.generation, reason = %why, "sweep: failing instance");
        m.fail_generation(inst.generation, format!("sweep: {why}"), ItsJob::Cancel).await;
    } else if started && *probe == JobProbe::NotRunning {
        let why = "its job exited without reporting a final state";
        tracing::warn!(pair = %inst.pair, generation = inst.generation, reason = why, "sweep: failing instance");
        // "Cancelling" a dead job only salvages the VM it left behind.
        m.fail_generation(inst.generation, format!("sweep: {why}"), ItsJob::Cancel).await;
    }
}
