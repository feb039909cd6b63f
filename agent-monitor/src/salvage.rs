//! Salvage: a vrun domain that no live instance holds is powered off, what its guest saved
//! is kept, and the domain and its work directory are removed.
//!
//! Two paths come here: the sweep, for domains it found orphaned for longer than
//! `orphan_grace`, and the core, for the domains of a generation that just lost its pair.
//! [`Salvage`] holds only what salvaging needs (the store, the hypervisor, the archive
//! settings and this daemon's id), not the daemon, so that the core can call it without a
//! circle back to itself. Only this daemon's own domains are ever salvaged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vrun_proto::FaultCode;

use crate::archives::{self, ArchiveSettings};
use crate::hypervisor::{Hypervisor, VrunDomain};
use crate::instances;
use crate::store::{now_ms, Store};

pub struct Salvage {
    store: Store,
    hypervisor: Arc<dyn Hypervisor>,
    archives: ArchiveSettings,
    /// How long a guest gets to save its database after the power button.
    timeout: Duration,
    /// This daemon's id: another agent-monitor's domain of the same generation is not ours.
    monitor_id: String,
    /// Domains being salvaged right now (by the sweep or after a lost lease), so that two
    /// paths never power off and store the same domain at once.
    salvaging: Mutex<HashSet<String>>,
    /// Set when shutdown begins: no salvage starts after it (one that began stored nothing
    /// and left its domain unowned until the next start, issue 13); the next start's sweep
    /// finds the domain and salvages it from the beginning.
    stopping: std::sync::atomic::AtomicBool,
}

impl Salvage {
    pub fn new(
        store: Store,
        hypervisor: Arc<dyn Hypervisor>,
        archives: ArchiveSettings,
        timeout: Duration,
        monitor_id: String,
    ) -> Salvage {
        Salvage {
            store,
            hypervisor,
            archives,
            timeout,
            monitor_id,
            salvaging: Mutex::default(),
            stopping: Default::default(),
        }
    }

    /// Salvages the domains of a generation that just lost its pair (its lease ran out, its
    /// job died), without waiting for the orphan grace: nothing will ever claim them.
    pub async fn generation(&self, generation: i64) {
        if !self.hypervisor.configured() {
            // No libvirt of our own: the node's DomainMonitor salvages what the job left.
            return;
        }
        let domains = match crate::hypervisor::inventory_within(&self.hypervisor).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(generation, error = %e, "cannot list domains; the sweep will find this generation's VM later");
                return;
            }
        };
        let me = self.monitor_id.as_str();
        for d in domains.into_iter().filter(|d| d.generation == generation && d.owned_by(me)) {
            self.domain(&d).await;
        }
    }

    /// From now on no salvage starts (shutdown has begun).
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Salvages one domain, unless another path is already salvaging it or shutdown began.
    pub async fn domain(&self, d: &VrunDomain) {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::info!(domain = %d.name, "shutting down: not salvaging; the next start's sweep will");
            return;
        }
        if !self.salvaging.lock().unwrap_or_else(|p| p.into_inner()).insert(d.name.clone()) {
            return;
        }
        self.salvage(d).await;
        self.salvaging.lock().unwrap_or_else(|p| p.into_inner()).remove(&d.name);
    }

    /// Power button, wait, keep what the guest saved, then remove the domain and its files.
    async fn salvage(&self, d: &VrunDomain) {
        tracing::warn!(domain = %d.name, generation = d.generation, "sweep: domain has no live instance; salvaging and removing it");
        let hv = Arc::clone(&self.hypervisor);
        let (name, wait) = (d.name.clone(), self.timeout);
        let disk = tokio::task::spawn_blocking(move || {
            if hv.is_running(&name) == Some(true) {
                let _ = hv.shutdown(&name);
                let end = Instant::now() + wait;
                while hv.is_running(&name) == Some(true) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            hv.output_disk(&name)
        })
        .await
        .ok()
        .flatten();

        let mut note = String::from("domain had no live instance; removed by the sweep");
        if let Some(disk) = &disk {
            match vrun_proto::outdisk::read_saved(disk) {
                Ok(Some(saved)) => note = self.keep(d, saved).await,
                Ok(None) => note.push_str(" (its guest saved no database)"),
                Err(e) => note.push_str(&format!(" (its saved database is corrupt and was not kept: {e})")),
            }
        }
        let hv = Arc::clone(&self.hypervisor);
        let name = d.name.clone();
        match tokio::task::spawn_blocking(move || hv.remove(&name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(domain = %d.name, error = %e, "sweep: cannot remove domain");
                return;
            }
            Err(_) => return,
        }
        // The work directory is named after the domain; remove it only if that holds.
        if let Some(dir) = disk.as_ref().and_then(|p| p.parent()) {
            if dir.file_name().and_then(|n| n.to_str()) == Some(d.name.as_str()) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        tracing::warn!(domain = %d.name, generation = d.generation, %note, "sweep: domain removed");
        let generation = d.generation;
        let _ = self
            .store
            .write(move |c| {
                if let Some(inst) = instances::by_generation(c, generation)? {
                    instances::note(c, &inst, &note, now_ms())?;
                }
                Ok(())
            })
            .await;
    }

    /// Stores a salvaged database when its generation is still the pair's newest (an older
    /// one would replace newer work as "the newest version").
    async fn keep(&self, d: &VrunDomain, saved: vrun_proto::outdisk::Saved) -> String {
        let size = saved.bytes.len();
        match archives::keep(&self.store, &self.archives, &d.pair, d.generation, &saved.sha256, saved.bytes).await {
            Ok(()) => format!(
                "domain had no live instance; its database ({size} bytes, sha256 {}) was salvaged; removed by the sweep",
                saved.sha256
            ),
            Err(e) if matches!(e.code, FaultCode::StaleGeneration | FaultCode::UnknownInstance) => {
                "domain had no live instance; removed by the sweep (its database is older than the pair's newest run and was not kept)".into()
            }
            Err(e) => format!("domain had no live instance; its database could not be kept: {e}"),
        }
    }
}
