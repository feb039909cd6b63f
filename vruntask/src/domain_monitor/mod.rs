//! `vruntask domain-monitor`: one long-running process per hypervisor node, SWAMP's
//! DomainMonitor ("in the event vruntask dies and the VM is still running, DomainMonitor
//! will trash the VM as soon as it can and let AgentMonitor know the VM is shutdown").
//!
//! Each sweep (every `every`, and at once on a libvirt lifecycle event):
//! 1. lists the vrun domains whose metadata names this node ([`node::list`]);
//! 2. reports them to agent-monitor (`nodeInventory`, role `node`), which answers with its
//!    id and which of their generations it still holds live; nothing is acted on without
//!    that answer, and only that agent-monitor's domains are ever touched;
//! 3. salvages each domain [`judge::judge`] condemns: a domain whose job is gone (no
//!    vruntask holds its run lock, [`crate::joblock`]) at once, one whose instance ended
//!    but whose job lives on after `grace`. Salvage: power button, up to `stop_timeout` for
//!    the guest to save, the saved database to agent-monitor (`nodeSalvaged`, which ends
//!    the instance and frees the pair), and only once that is answered, the domain, its
//!    work directory and its lock file are removed. If agent-monitor cannot take the
//!    database, the domain stays (powered off, its disk intact) for the next sweep.
//!
//! SIGTERM ends it between steps: whatever it was doing is done again by the next start.

pub mod judge;
pub mod node;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::node::{NodeDomain, NodeInventory, NodeSalvaged};

use self::judge::Verdict;
use self::node::NodeDom;

/// `vruntask domain-monitor`'s settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    pub uri: String,
    pub agent_monitor_url: String,
    /// The node credential (agent-monitor's `secrets/node.secret`); owner-only.
    pub secret_file: PathBuf,
    /// Where runs hold their locks (`vruntask run --runtime-dir`).
    pub runtime_dir: PathBuf,
    /// Where runs make their work directories (`vruntask run --work-root`).
    pub work_root: PathBuf,
    pub every: Duration,
    pub stop_timeout: Duration,
    pub grace: Duration,
    pub libvirt_timeout: Duration,
}

/// Why the DomainMonitor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the node credential {path}: {source}")]
    Secret { path: PathBuf, source: std::io::Error },
    #[error("the node credential {0} is readable by others; make it owner-only (chmod 0600)")]
    SecretMode(PathBuf),
    #[error("cannot make an agent-monitor client: {0}")]
    Client(String),
}

/// Reads the node credential, refusing a file others may read.
fn credentials(path: &Path) -> Result<Credentials, StartError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| StartError::Secret { path: path.into(), source })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StartError::SecretMode(path.into()));
    }
    Credentials::from_secret_file("node", path).map_err(|source| StartError::Secret { path: path.into(), source })
}

/// The DomainMonitor between sweeps.
pub struct Monitor {
    s: Settings,
    client: AgentMonitorClient,
    /// Domains agent-monitor no longer holds live, and since when.
    not_live_since: HashMap<String, Instant>,
}

impl Monitor {
    pub fn new(s: Settings) -> Result<Monitor, StartError> {
        let creds = credentials(&s.secret_file)?;
        let client =
            AgentMonitorClient::new(&s.agent_monitor_url, creds).map_err(|e| StartError::Client(e.to_string()))?;
        Ok(Monitor { s, client, not_live_since: HashMap::new() })
    }

    /// A libvirt step off the async tasks, under `deadline`.
    async fn libvirt<T: Send + 'static>(
        &self,
        what: &str,
        deadline: Duration,
        f: impl FnOnce(&str) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let uri = self.s.uri.clone();
        match tokio::time::timeout(deadline, tokio::task::spawn_blocking(move || f(&uri))).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("{what} panicked: {e}")),
            Err(_) => Err(format!("libvirt did not answer {what} within {} s", deadline.as_secs())),
        }
    }

    async fn report(&self, doms: &[NodeDom]) -> Result<vrun_proto::node::InventoryReply, String> {
        let domains = doms
            .iter()
            .map(|d| NodeDomain {
                name: d.name.clone(),
                pair: d.meta.pair.clone(),
                generation: d.meta.generation,
                running: d.running,
                owner: d.meta.owner.clone().unwrap_or_default(),
            })
            .collect();
        let req = NodeInventory { node: self.s.node.clone(), domains };
        self.client.node_inventory(&req).await.map_err(|e| e.to_string())
    }

    /// One sweep; returns how many domains it salvaged.
    pub async fn sweep_once(&mut self) -> usize {
        let node = self.s.node.clone();
        let doms =
            match self.libvirt("the domain list", self.s.libvirt_timeout, move |uri| node::list(uri, &node)).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list this node's domains");
                    return 0;
                }
            };
        let reply = match self.report(&doms).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot report to agent-monitor; acting on nothing until it answers");
                return 0;
            }
        };
        let ours: Vec<NodeDom> =
            doms.into_iter().filter(|d| d.meta.owner.as_deref() == Some(reply.monitor_id.as_str())).collect();
        self.not_live_since.retain(|name, _| ours.iter().any(|d| &d.name == name));
        let mut salvaged = 0;
        for d in ours {
            let live = reply.live.contains(&d.meta.generation);
            let since = if live {
                self.not_live_since.remove(&d.name);
                Duration::ZERO
            } else {
                self.not_live_since.entry(d.name.clone()).or_insert_with(Instant::now).elapsed()
            };
            let alive = crate::joblock::is_held(&self.s.runtime_dir, &d.name);
            if let Verdict::Salvage(why) = judge::judge(&self.s.node, alive, live, since, self.s.grace) {
                if self.salvage(&d, &why).await {
                    salvaged += 1;
                }
            }
        }
        if salvaged > 0 {
            // Tell agent-monitor at once that they are gone (its status reads the report).
            let node = self.s.node.clone();
            if let Ok(doms) =
                self.libvirt("the domain list", self.s.libvirt_timeout, move |uri| node::list(uri, &node)).await
            {
                let _ = self.report(&doms).await;
            }
        }
        salvaged
    }

    /// Power off, hand over the database, then remove. True when the domain was removed.
    async fn salvage(&mut self, d: &NodeDom, why: &str) -> bool {
        tracing::warn!(domain = %d.name, generation = d.meta.generation, reason = why, "salvaging a domain");
        let (dom, wait) = (d.clone(), self.s.stop_timeout);
        let off = self
            .libvirt("the power-off", wait + self.s.libvirt_timeout, move |uri| node::power_off(uri, &dom, wait))
            .await;
        match off {
            Ok(true) => {}
            Ok(false) => tracing::warn!(domain = %d.name, "the guest did not power off in time; destroyed"),
            Err(e) => {
                tracing::error!(domain = %d.name, error = %e, "cannot power the domain off; next sweep");
                return false;
            }
        }
        let dom = d.clone();
        let disk = match self
            .libvirt("the domain's disks", self.s.libvirt_timeout, move |uri| node::output_disk(uri, &dom))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(domain = %d.name, error = %e, "cannot find the domain's output disk; next sweep");
                return false;
            }
        };
        let saved = match &disk {
            None => None,
            Some(p) => {
                let p = p.clone();
                match tokio::task::spawn_blocking(move || vrun_proto::outdisk::read_saved(&p)).await {
                    Ok(Ok(s)) => s.map(|s| (s.bytes, s.sha256)),
                    Ok(Err(e)) => {
                        tracing::warn!(domain = %d.name, error = %e, "the saved database is corrupt; not handed over");
                        None
                    }
                    Err(_) => None,
                }
            }
        };
        let req = NodeSalvaged {
            node: self.s.node.clone(),
            domain: d.name.clone(),
            pair: d.meta.pair.clone(),
            generation: d.meta.generation,
            reason: why.to_string(),
            saved,
        };
        match self.client.node_salvaged(&req).await {
            Ok(r) => tracing::warn!(domain = %d.name, kept = r.kept, note = %r.note, "agent-monitor took the salvage"),
            Err(e) => {
                tracing::error!(domain = %d.name, error = %e, "agent-monitor did not take the salvage; keeping the domain for the next sweep");
                return false;
            }
        }
        let dom = d.clone();
        if let Err(e) =
            self.libvirt("the domain's removal", self.s.libvirt_timeout, move |uri| node::remove(uri, &dom)).await
        {
            tracing::error!(domain = %d.name, error = %e, "cannot remove the domain; next sweep");
            return false;
        }
        // Its work directory is `<work root>/<domain name>`; nothing else is removed.
        if let Some(dir) = disk.as_ref().and_then(|p| p.parent()) {
            if dir == self.s.work_root.join(&d.name) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        crate::joblock::remove_stale(&self.s.runtime_dir, &d.name);
        self.not_live_since.remove(&d.name);
        tracing::warn!(domain = %d.name, "domain salvaged and removed");
        true
    }
}

/// Runs the DomainMonitor until `shutdown` completes (both boxed: see [`crate::Task`]).
pub fn run(s: Settings, shutdown: crate::Task<()>) -> crate::Task<Result<(), StartError>> {
    Box::pin(monitor(s, shutdown))
}

async fn monitor(s: Settings, shutdown: crate::Task<()>) -> Result<(), StartError> {
    let mut m = Monitor::new(s)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    vrun_proto::lifecycle::spawn(m.s.uri.clone(), Arc::clone(&wake));
    tracing::info!(node = %m.s.node, uri = %m.s.uri, every_secs = m.s.every.as_secs_f64(), "domain monitor running");
    let mut tick = tokio::time::interval(m.s.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
            _ = wake.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = m.sweep_once() => {}
        }
    }
    tracing::info!(node = %m.s.node, "domain monitor stopped");
    Ok(())
}
