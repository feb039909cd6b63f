//! One viewer run, start to finish: disks, domain, watching, and the shutdown that every
//! path ends in (save the database, store it, undefine, clean up, report).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vrun_proto::client::ClientError;
use vrun_proto::job::JobSpec;
use vrun_proto::{FaultCode, Pair, ViewerState};

use crate::disks::{self, RunConfig};
use crate::domain_xml::{Boot, DomainSpec, Net};
use crate::hypervisor::{Hypervisor, VmState};
use crate::report::Reporter;
use crate::serial::{Event, SerialTail};
use crate::workdir::WorkDir;
use crate::{Exit, NetMode, Options};

/// Why the run is ending.
#[derive(Debug, Clone)]
enum End {
    /// Someone asked (abortViewer, a stale generation, SIGTERM): stop gracefully.
    Requested(String),
    /// The guest powered itself off.
    GuestOff,
    /// Something broke; the instance is `failed` with this reason.
    Failure(String),
}

/// How often the serial log and the domain are looked at.
const TICK: Duration = Duration::from_millis(100);
/// How often the serial log is read until VIEWERUP: every View waits for that line, so it is
/// noticed within 20 ms (a read of a small file's new bytes); libvirt is still asked only
/// every [`TICK`].
const BOOT_TICK: Duration = Duration::from_millis(20);
/// How often the power button is pressed again while the guest has not powered off.
const PRESS_AGAIN: Duration = Duration::from_secs(5);

pub async fn run(
    job: JobSpec,
    pair: Pair,
    opts: &Options,
    hv: Arc<dyn Hypervisor>,
    rep: Reporter,
) -> Exit {
    let name = pair.domain_name(job.generation);
    let work = match WorkDir::create(&opts.work_root, &name) {
        Ok(w) => w,
        Err(e) => return fail_early(&rep, format!("cannot create work directory: {e}")).await,
    };
    let exit = run_in(&job, &pair, &name, &work, opts, hv.as_ref(), &rep).await;
    work.remove();
    exit
}

async fn fail_early(rep: &Reporter, reason: String) -> Exit {
    tracing::error!(%reason, "run failed before the VM started");
    let _ = rep
        .state(ViewerState::Failed, None, None, Some(reason))
        .await;
    Exit::Failed
}

fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn boot_of(platform: &Path, work: &WorkDir) -> Result<Boot, String> {
    if platform.is_dir() {
        let kernel = platform.join("vmlinuz");
        let initrd = platform.join("initrd.img");
        if !kernel.is_file() || !initrd.is_file() {
            return Err(format!(
                "platform {} has no vmlinuz and initrd.img",
                platform.display()
            ));
        }
        let cmdline = std::fs::read_to_string(platform.join("image.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["cmdline"].as_str().map(String::from))
            .unwrap_or_else(|| "console=ttyS0 quiet loglevel=3 panic=1".into());
        return Ok(Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        });
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
            return Err(format!(
                "qemu-img create failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        return Ok(Boot::Disk { overlay });
    }
    Err(format!("platform {} does not exist", platform.display()))
}

async fn run_in(
    job: &JobSpec,
    pair: &Pair,
    name: &str,
    work: &WorkDir,
    opts: &Options,
    hv: &dyn Hypervisor,
    rep: &Reporter,
) -> Exit {
    // Disks.
    let restore = job.db_path.as_ref().map(PathBuf::from);
    if let Some(p) = &restore {
        if !p.is_file() {
            // Starting empty would silently drop the users' triage work.
            return fail_early(
                rep,
                format!("viewer database to restore is missing: {}", p.display()),
            )
            .await;
        }
    }
    if job.users.is_empty() {
        return fail_early(
            rep,
            "the job names no authorised users for the viewer".into(),
        )
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
    let expected = restore
        .as_ref()
        .and_then(|p| p.metadata().ok())
        .map(|m| m.len())
        .unwrap_or(0);
    let (cfg, out, serial) = (
        work.file("config.img"),
        work.file("output.img"),
        work.file("serial.log"),
    );
    if let Err(e) = disks::write_config_disk(&cfg, &run, restore.as_deref())
        .and_then(|_| disks::create_output_disk(&out, expected))
    {
        return fail_early(rep, format!("cannot build the VM's disks: {e}")).await;
    }
    tracing::info!("disks built");
    let boot = match boot_of(Path::new(&job.platform), work) {
        Ok(b) => b,
        Err(e) => return fail_early(rep, e).await,
    };
    let net = match &opts.network {
        NetMode::Loopback => match free_loopback_port() {
            Ok(p) => Net::Loopback {
                host_port: p,
                guest_port: opts.guest_port,
            },
            Err(e) => return fail_early(rep, format!("no free loopback port: {e}")).await,
        },
        NetMode::Bridge(network) => Net::Bridge {
            network: network.clone(),
        },
    };
    let spec = DomainSpec {
        name: name.to_string(),
        pair: pair.clone(),
        generation: job.generation,
        memory_mib: job.memory_mib,
        vcpus: job.vcpus,
        accel: opts.accel,
        boot,
        config_disk: cfg,
        output_disk: out.clone(),
        serial_log: serial.clone(),
        net: net.clone(),
    };

    // Domain. A leftover of this very generation (an earlier attempt) goes first.
    let _ = hv.undefine(name);
    if let Err(e) = hv.define_and_start(&spec.to_xml()) {
        return fail_early(rep, format!("cannot start the VM: {e}")).await;
    }
    tracing::info!(domain = name, accel = ?opts.accel, "VM started");
    let _ = rep
        .state(
            ViewerState::Booting,
            None,
            Some(name.to_string()),
            Some("VM started".into()),
        )
        .await;

    let vm = Vm {
        job,
        name,
        net,
        out,
        serial,
        opts,
        hv,
        rep,
    };
    let (end, was_ready) = vm.watch().await;
    vm.teardown(end, was_ready).await
}

/// A run whose VM has been started: everything watching and teardown work with.
struct Vm<'a> {
    job: &'a JobSpec,
    name: &'a str,
    net: Net,
    out: PathBuf,
    serial: PathBuf,
    opts: &'a Options,
    hv: &'a dyn Hypervisor,
    rep: &'a Reporter,
}

impl Vm<'_> {
    /// Watches until the run must end: boots to ready, heartbeats, follows the guest.
    /// Returns why it ends and whether the viewer ever came up.
    async fn watch(&self) -> (End, bool) {
        let mut ready = false;
        let end = self
            .watch_until_end(&mut SerialTail::new(self.serial.clone()), &mut ready)
            .await;
        (end, ready)
    }

    async fn watch_until_end(&self, tail: &mut SerialTail, ready: &mut bool) -> End {
        let Vm {
            job,
            name,
            net,
            opts,
            hv,
            rep,
            ..
        } = self;
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let boot_deadline = Instant::now() + opts.boot_timeout;
        let beat_every = Duration::from_secs(job.heartbeat_secs.max(1));
        let mut next_beat = Instant::now();
        let mut next_state = Instant::now();
        // libvirtd may be down for a while (QEMU runs on): say so once, not four times a second.
        let mut hv_down = false;
        loop {
            for ev in tail.poll() {
                tracing::info!(?ev, "guest event");
                match ev {
                    Event::ViewerUp(guest_addr) if !*ready => {
                        let address = match net {
                            Net::Loopback { host_port, .. } => format!("127.0.0.1:{host_port}"),
                            Net::Bridge { .. } => guest_addr,
                        };
                        match rep
                            .state(
                                ViewerState::Ready,
                                Some(address.clone()),
                                None,
                                Some("viewer is up".into()),
                            )
                            .await
                        {
                            Ok(()) => *ready = true,
                            Err(e) => return end_for_report_error(e),
                        }
                        tracing::info!(%address, "viewer ready");
                    }
                    Event::Error(reason) => {
                        return End::Failure(format!("guest reported: {reason}"))
                    }
                    _ => {}
                }
            }
            if Instant::now() >= next_state {
                next_state = Instant::now() + TICK;
                let state = hv.state(name);
                match (&state, hv_down) {
                    (Err(e), false) => {
                        tracing::warn!(
                            error = %e,
                            "cannot read domain state; the viewer keeps serving"
                        )
                    }
                    (Ok(_), true) => tracing::info!("libvirt answers again"),
                    _ => {}
                }
                hv_down = state.is_err();
                match state {
                    Ok(VmState::Running) | Err(_) => {}
                    Ok(VmState::Off) => return End::GuestOff,
                    Ok(VmState::Missing) => {
                        return End::Failure("the VM's domain vanished".into())
                    }
                }
                if !*ready && Instant::now() > boot_deadline {
                    return End::Failure(format!(
                        "no VIEWERUP within {} s of boot",
                        opts.boot_timeout.as_secs()
                    ));
                }
                if Instant::now() >= next_beat {
                    next_beat = Instant::now() + beat_every;
                    match rep.heartbeat().await {
                        Ok(true) => {}
                        Ok(false) => {
                            return End::Requested(
                                "agent-monitor asked the viewer to stop".into(),
                            )
                        }
                        Err(e @ ClientError::Unreachable { .. }) => {
                            // agent-monitor may be restarting; the viewer keeps serving meanwhile.
                            tracing::warn!(error = %e, "heartbeat failed");
                        }
                        Err(e) => return end_for_report_error(e),
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(if *ready { TICK } else { BOOT_TICK }) => {}
                _ = term.recv() => return End::Requested("SIGTERM".into()),
                _ = int.recv() => return End::Requested("SIGINT".into()),
            }
        }
    }

    /// Presses the power button and waits up to `stop_timeout` for the guest to save its
    /// database and power off. The press is repeated every few seconds (one that arrives
    /// before the guest's acpid runs is lost), and the job keeps heartbeating meanwhile: a
    /// save that takes longer than the lease must not get the VM reaped.
    async fn power_off_gracefully(&self) {
        let Vm { name, opts, hv, rep, job, .. } = self;
        let deadline = Instant::now() + opts.stop_timeout;
        let beat_every = Duration::from_secs(job.heartbeat_secs.max(1));
        let (mut next_press, mut next_beat) = (Instant::now(), Instant::now() + beat_every);
        while matches!(hv.state(name), Ok(VmState::Running)) && Instant::now() < deadline {
            if Instant::now() >= next_press {
                if let Err(e) = hv.shutdown(name) {
                    tracing::warn!(error = %e, "ACPI shutdown refused");
                }
                next_press = Instant::now() + PRESS_AGAIN;
            }
            if Instant::now() >= next_beat {
                // The answer is moot (we are stopping either way); the lease is what counts.
                let _ = rep.heartbeat().await;
                next_beat = Instant::now() + beat_every;
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Every path ends here: power button, wait, destroy if needed, save, store, undefine, report.
    async fn teardown(&self, end: End, was_ready: bool) -> Exit {
        let Vm {
            name,
            out,
            serial,
            opts,
            hv,
            rep,
            ..
        } = self;
        tracing::info!(?end, "tearing down");
        let mut tail = SerialTail::new(serial.clone());
        let mut failure = match &end {
            End::Failure(r) => Some(r.clone()),
            _ => None,
        };
        if matches!(hv.state(name), Ok(VmState::Running)) {
            self.power_off_gracefully().await;
            if matches!(hv.state(name), Ok(VmState::Running)) {
                tracing::warn!(
                    domain = name,
                    "guest did not power off in time; destroying it"
                );
                let _ = hv.destroy(name);
                failure.get_or_insert_with(|| {
                    format!(
                        "the guest did not power off within {} s and was destroyed",
                        opts.stop_timeout.as_secs()
                    )
                });
            }
        }
        let _ = tail.poll();
        // Whatever the guest managed to save is stored, on every path: triage work is never lost.
        match disks::read_saved(out) {
            Ok(Some(saved)) => match rep.store(&saved).await {
                Ok(()) => {
                    tracing::info!(sha256 = %saved.sha256, bytes = saved.bytes.len(), "viewer database stored")
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot store the viewer database");
                    failure
                        .get_or_insert_with(|| format!("viewer database could not be stored: {e}"));
                }
            },
            Ok(None) => {
                // A viewer that served users must have saved; one stopped during boot had nothing.
                if was_ready && matches!(end, End::Requested(_) | End::GuestOff) {
                    failure.get_or_insert_with(|| {
                        let last = tail
                            .recent
                            .iter()
                            .rev()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" | ");
                        format!("the guest stopped without saving its database (serial: {last})")
                    });
                }
            }
            Err(e) => {
                failure.get_or_insert_with(|| {
                    format!("the saved viewer database is corrupt and was not stored: {e}")
                });
            }
        }
        if let Err(e) = hv.undefine(name) {
            tracing::error!(error = %e, "cannot undefine the domain");
            failure.get_or_insert_with(|| format!("cannot undefine the domain: {e}"));
        }
        let (state, reason, exit) = match (failure, &end) {
            (Some(r), _) => (ViewerState::Failed, r, Exit::Failed),
            (None, End::Requested(r)) => {
                (ViewerState::Stopped, format!("stopped: {r}"), Exit::Stopped)
            }
            (None, _) => (
                ViewerState::Stopped,
                "the guest powered itself off".to_string(),
                Exit::Stopped,
            ),
        };
        if let Err(e) = rep.state(state, None, None, Some(reason.clone())).await {
            tracing::warn!(error = %e, "final state not recorded");
        }
        tracing::info!(%state, %reason, "run finished");
        exit
    }
}

fn end_for_report_error(e: ClientError) -> End {
    match e.fault_code() {
        Some(FaultCode::StaleGeneration)
        | Some(FaultCode::UnknownInstance)
        | Some(FaultCode::IllegalTransition) => {
            End::Requested(format!("this generation is no longer current: {e}"))
        }
        _ => End::Failure(format!("agent-monitor refused a report: {e}")),
    }
}
