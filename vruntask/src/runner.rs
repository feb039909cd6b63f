//! One viewer run, start to finish: disks, domain, then [`crate::watch`] until the run must
//! end and the teardown every path ends in.
//!
//! Every step that blocks (files, disks, `qemu-img`, the accelerator probe, each libvirt
//! call) runs off the async tasks, and every libvirt call has a deadline (see
//! [`crate::hvcall`]); heartbeats go on meanwhile on their own task. Between steps the run
//! checks for a stop request. A run that ends before its VM served anyone — cancelled,
//! refused, or failed — removes its domain (waiting for a slow libvirt to answer first if it
//! must) and its work directory: nothing of a failed start outlives the job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vrun_proto::job::JobSpec;
use vrun_proto::{Pair, ViewerState};

use crate::disks::{self, RunConfig};
use crate::domain_xml::{Boot, DomainSpec, Net};
use crate::heartbeat::{Stop, StopReason};
use crate::hvcall::{CallError, Hv, Pending, Unfinished};
use crate::report::Reporter;
use crate::watch::Vm;
use crate::workdir::WorkDir;
use crate::{accel, blocking, Exit, NetMode, Options};

pub async fn run(job: JobSpec, pair: Pair, opts: &Options, hv: Hv, rep: Arc<Reporter>, stop: Stop) -> Exit {
    let name = pair.domain_name(&job.monitor_id, job.generation);
    // Held from before the domain exists to after it is gone: the node's DomainMonitor
    // takes a domain whose lock is free for one whose job died.
    let (dir, n) = (opts.runtime_dir.clone(), name.clone());
    let _run_lock = match blocking(move || crate::joblock::RunLock::take(&dir, &n)).await {
        Ok(l) => l,
        Err(e @ crate::joblock::LockError::Held(_)) => {
            // That job reports for this generation; a report from here would confuse it.
            tracing::error!(error = %e, "not running");
            return Exit::Failed;
        }
        Err(e) => {
            let start = Start { job: &job, pair: &pair, name: &name, opts, hv: &hv, rep: &rep };
            return start.end_early(Early::Failure(e.to_string()), Domain::Never).await;
        }
    };
    let (root, n) = (opts.work_root.clone(), name.clone());
    let work = match blocking(move || WorkDir::create(&root, &n)).await {
        Ok(w) => Arc::new(w),
        Err(e) => {
            let start = Start { job: &job, pair: &pair, name: &name, opts, hv: &hv, rep: &rep };
            return start.end_early(Early::Failure(format!("cannot create work directory: {e}")), Domain::Never).await;
        }
    };
    let start = Start { job: &job, pair: &pair, name: &name, opts, hv: &hv, rep: &rep };
    let exit = start.run_in(&work, stop).await;
    let w = Arc::clone(&work);
    blocking(move || w.remove()).await;
    exit
}

/// How a run ends before its VM was watched.
enum Early {
    Failure(String),
    Stopped(String),
}

impl From<StopReason> for Early {
    fn from(r: StopReason) -> Early {
        match r {
            StopReason::Requested(why) => Early::Stopped(format!("stopped before the VM started: {why}")),
            StopReason::Failure(why) => Early::Failure(why),
        }
    }
}

/// Whether an early end may have left a domain to remove.
enum Domain {
    /// It ended before `define`.
    Never,
    /// `define` or `start` was called; the call may still be running.
    Maybe(Option<Pending<()>>),
}

/// What the start phase works with.
struct Start<'a> {
    job: &'a JobSpec,
    pair: &'a Pair,
    name: &'a str,
    opts: &'a Options,
    hv: &'a Hv,
    rep: &'a Arc<Reporter>,
}

impl Start<'_> {
    async fn run_in(&self, work: &Arc<WorkDir>, mut stop: Stop) -> Exit {
        let (job, opts) = (self.job, self.opts);
        let mut restore = job.db_path.as_ref().map(PathBuf::from);
        if restore.is_some() && job.db_sha256.is_some() {
            // A fetched job: agent-monitor's path means nothing on this node.
            match crate::fetch::database(job, &work.file("restore.archive")).await {
                Ok(p) => restore = Some(p),
                Err(e) => return self.end_early(Early::Failure(e.to_string()), Domain::Never).await,
            }
        }
        if let Some(p) = &restore {
            if !p.is_file() {
                // Starting empty would silently drop the users' triage work.
                let why = format!("viewer database to restore is missing: {}", p.display());
                return self.end_early(Early::Failure(why), Domain::Never).await;
            }
        }
        if job.users.is_empty() {
            return self
                .end_early(Early::Failure("the job names no authorised users for the viewer".into()), Domain::Never)
                .await;
        }
        let run = RunConfig {
            project: job.project.clone(),
            viewer: job.viewer.clone(),
            users: job.users.clone(),
            apikey: job.apikey.clone(),
            urluuid: job.urluuid.clone(),
            port: opts.guest_port,
        };
        let (cfg, out, serial) = (work.file("config.img"), work.file("output.img"), work.file("serial.log"));
        let built = {
            let (cfg, out, restore) = (cfg.clone(), out.clone(), restore.clone());
            blocking(move || {
                let expected = restore.as_ref().and_then(|p| p.metadata().ok()).map(|m| m.len()).unwrap_or(0);
                disks::write_config_disk(&cfg, &run, restore.as_deref())
                    .and_then(|_| disks::create_output_disk(&out, expected))
            })
            .await
        };
        if let Err(e) = built {
            return self.end_early(Early::Failure(format!("cannot build the VM's disks: {e}")), Domain::Never).await;
        }
        tracing::info!("disks built");
        let boot = {
            let (job, image_dir, work) = (job.clone(), opts.image_dir.clone(), Arc::clone(work));
            match blocking(move || crate::fetch::platform(&job, image_dir.as_deref()).and_then(|p| boot_of(&p, &work)))
                .await
            {
                Ok(b) => b,
                Err(e) => return self.end_early(Early::Failure(e), Domain::Never).await,
            }
        };
        let accel = {
            let kernel = match &boot {
                Boot::Kernel { kernel, .. } => Some(kernel.clone()),
                Boot::Disk { .. } => None,
            };
            let (choice, dir) = (opts.accel, opts.runtime_dir.clone());
            blocking(move || accel::choose(choice, &dir, kernel.as_deref())).await
        };
        let net = match &opts.network {
            NetMode::Loopback => match free_port(opts.advertise) {
                Ok(p) => Net::Loopback { bind: opts.advertise, host_port: p, guest_port: opts.guest_port },
                Err(e) => {
                    return self.end_early(Early::Failure(format!("no free loopback port: {e}")), Domain::Never).await
                }
            },
            NetMode::Bridge(network) => Net::Bridge { network: network.clone() },
        };
        let spec = DomainSpec {
            name: self.name.to_string(),
            pair: self.pair.clone(),
            generation: job.generation,
            monitor_id: job.monitor_id.clone(),
            node: opts.node.clone(),
            memory_mib: job.memory_mib,
            vcpus: job.vcpus,
            accel,
            boot,
            config_disk: cfg,
            output_disk: out.clone(),
            serial_log: serial.clone(),
            net: net.clone(),
        };
        if let Some(r) = stop.get() {
            return self.end_early(r.into(), Domain::Never).await;
        }

        // Domain. A leftover of this very name (an earlier attempt at this generation of
        // this agent-monitor: the name carries its id) goes first.
        let n = self.name.to_string();
        if let Err(e) = self.hv.call("domain undefine", move |h| h.undefine(&n)).await {
            return self.end_early(Early::Failure(format!("cannot start the VM: {e}")), Domain::Never).await;
        }
        let xml = spec.to_xml();
        if let Err((how, pending)) =
            self.call_or_stop("domain define", move |h| h.define(&xml).map(drop), &mut stop).await
        {
            return self.end_early(how, Domain::Maybe(pending)).await;
        }
        let n = self.name.to_string();
        if let Err((how, pending)) = self.call_or_stop("domain start", move |h| h.start(&n), &mut stop).await {
            return self.end_early(how, Domain::Maybe(pending)).await;
        }
        tracing::info!(domain = self.name, ?accel, "VM started");
        let booting =
            self.rep.state(ViewerState::Booting, None, Some(self.name.to_string()), Some("VM started".into()));
        let _ = booting.await;

        let vm = Vm { job, name: self.name, net, out, serial, opts, hv: self.hv, rep: self.rep };
        let (end, was_ready) = vm.watch(&mut stop).await;
        vm.teardown(end, was_ready).await
    }

    /// Ends a run whose VM never served anyone: the reason is reported at once (a user
    /// waiting on the click sees it), then whatever libvirt holds of the domain is removed —
    /// after a call that outlived its deadline has finished, since it may still define or
    /// start the domain once libvirt answers.
    async fn end_early(&self, how: Early, domain: Domain) -> Exit {
        let (state, reason, exit) = match how {
            Early::Failure(r) => (ViewerState::Failed, r, Exit::Failed),
            Early::Stopped(r) => (ViewerState::Stopped, r, Exit::Stopped),
        };
        if exit == Exit::Failed {
            tracing::error!(%reason, "run failed before the VM started");
        } else {
            tracing::info!(%reason, "run ended before the VM started");
        }
        if let Err(e) = self.rep.state(state, None, None, Some(reason)).await {
            tracing::warn!(error = %e, "final state not recorded");
        }
        let pending = match domain {
            Domain::Never => return exit,
            Domain::Maybe(pending) => pending,
        };
        if let Some(p) = pending {
            tracing::warn!("waiting for libvirt to answer before removing the domain");
            // Answered either way, the call is over and the domain can be removed; still
            // silent, removing would only queue behind it.
            if let Err(e @ CallError::Timeout { .. }) =
                self.hv.wait("the call that timed out", p, self.opts.cleanup_patience).await
            {
                tracing::error!(error = %e, domain = self.name, "libvirt still does not answer; agent-monitor's sweep removes the domain if it appears");
                return exit;
            }
        }
        if let Err(e) = self.remove_domain().await {
            tracing::error!(error = %e, domain = self.name, "cannot remove the domain; agent-monitor's sweep removes it");
        }
        exit
    }

    /// A libvirt call of the start that gives way to a stop request; on any other outcome
    /// than success, how the run ends and the call still pending, if it is.
    async fn call_or_stop<F>(
        &self,
        what: &'static str,
        f: F,
        stop: &mut Stop,
    ) -> Result<(), (Early, Option<Pending<()>>)>
    where
        F: FnOnce(&dyn crate::hypervisor::Hypervisor) -> Result<(), crate::hypervisor::HvError> + Send + 'static,
    {
        match self.hv.call_until(what, f, stop.wait()).await {
            Ok(()) => Ok(()),
            Err(Unfinished::Error(e, pending)) => Err((Early::Failure(format!("cannot start the VM: {e}")), pending)),
            Err(Unfinished::Interrupted(why, pending)) => Err((why.into(), Some(pending))),
        }
    }

    /// Removes the domain of this run (destroyed first if it runs); waits for a slow libvirt
    /// up to the cleanup patience.
    async fn remove_domain(&self) -> Result<(), CallError> {
        self.hv.remove_domain(self.name, self.opts.cleanup_patience).await
    }
}

fn free_port(on: std::net::Ipv4Addr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((on, 0))?.local_addr()?.port())
}

/// The kernel a platform directory boots: its uncompressed `vmlinux` when it has one (QEMU
/// enters it directly through its PVH entry; under TCG that saves the ~7 s the firmware and
/// the kernel spend unpacking the bzImage, docs/image.md), else the `vmlinuz` bzImage.
pub fn boot_kernel(platform: &Path) -> PathBuf {
    let direct = platform.join("vmlinux");
    if direct.is_file() {
        direct
    } else {
        platform.join("vmlinuz")
    }
}

fn boot_of(platform: &Path, work: &WorkDir) -> Result<Boot, String> {
    if platform.is_dir() {
        let kernel = boot_kernel(platform);
        let initrd = platform.join("initrd.img");
        if !kernel.is_file() || !initrd.is_file() {
            return Err(format!("platform {} has no vmlinuz and initrd.img", platform.display()));
        }
        let cmdline = std::fs::read_to_string(platform.join("image.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["cmdline"].as_str().map(String::from))
            .unwrap_or_else(|| "console=ttyS0 quiet loglevel=3 panic=1".into());
        return Ok(Boot::Kernel { kernel, initrd, cmdline });
    }
    if platform.is_file() {
        // Never write to the shared image: boot a copy-on-write overlay of it.
        let overlay = work.file("overlay.qcow2");
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(platform)
            .arg(&overlay)
            .output()
            .map_err(|e| format!("cannot run qemu-img: {e}"))?;
        if !out.status.success() {
            return Err(format!("qemu-img create failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        return Ok(Boot::Disk { overlay });
    }
    Err(format!("platform {} does not exist", platform.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_uncompressed_kernel_is_booted_when_the_image_has_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("vmlinuz"), b"bz").unwrap();
        assert_eq!(super::boot_kernel(d.path()), d.path().join("vmlinuz"));
        std::fs::write(d.path().join("vmlinux"), b"elf").unwrap();
        assert_eq!(super::boot_kernel(d.path()), d.path().join("vmlinux"));
    }
}
