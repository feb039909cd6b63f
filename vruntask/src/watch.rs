//! A run whose VM has been started: watching it until the run must end, and the teardown
//! that every such run ends in (save the database, store it, undefine, report).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use vrun_proto::job::JobSpec;
use vrun_proto::ViewerState;

use crate::disks;
use crate::domain_xml::Net;
use crate::heartbeat::{stop_for_report_error, Stop, StopReason};
use crate::hvcall::Hv;
use crate::hypervisor::{HvError, VmState};
use crate::report::Reporter;
use crate::serial::{Event, SerialTail};
use crate::{blocking, Exit, Options};

/// Why the run is ending.
#[derive(Debug, Clone)]
pub enum End {
    /// Someone asked (abortViewer, a stale generation, SIGTERM): stop gracefully.
    Requested(String),
    /// The guest powered itself off.
    GuestOff,
    /// Something broke; the instance is `failed` with this reason.
    Failure(String),
}

impl From<StopReason> for End {
    fn from(r: StopReason) -> End {
        match r {
            StopReason::Requested(why) => End::Requested(why),
            StopReason::Failure(why) => End::Failure(why),
        }
    }
}

/// How often the serial log and the domain are looked at.
const TICK: Duration = Duration::from_millis(100);
/// How often the serial log is read until VIEWERUP: every View waits for that line, so it is
/// noticed within 20 ms (a read of a small file's new bytes); libvirt is still asked only
/// every [`TICK`].
const BOOT_TICK: Duration = Duration::from_millis(20);
/// How often the power button is pressed again while the guest has not powered off.
const PRESS_AGAIN: Duration = Duration::from_secs(5);

/// A run whose VM has been started: everything watching and teardown work with.
pub struct Vm<'a> {
    pub job: &'a JobSpec,
    pub name: &'a str,
    pub net: Net,
    pub out: PathBuf,
    pub serial: PathBuf,
    pub opts: &'a Options,
    pub hv: &'a Hv,
    pub rep: &'a Arc<Reporter>,
}

type StateCall = JoinHandle<Result<VmState, HvError>>;

impl Vm<'_> {
    /// Watches until the run must end: boots to ready, follows the guest, honours stop
    /// requests. Returns why it ends and whether the viewer ever came up.
    pub async fn watch(&self, stop: &mut Stop) -> (End, bool) {
        let mut ready = false;
        let end = self.watch_until_end(&mut SerialTail::new(self.serial.clone()), &mut ready, stop).await;
        (end, ready)
    }

    async fn watch_until_end(&self, tail: &mut SerialTail, ready: &mut bool, stop: &mut Stop) -> End {
        let boot_deadline = Instant::now() + self.opts.boot_timeout;
        let mut next_state = Instant::now();
        // One state call at a time: a libvirtd that stopped answering must not collect a
        // blocked thread every tick. `hv_down` says so once, not ten times a second.
        let mut pending: Option<(Instant, StateCall)> = None;
        let mut hv_down = false;
        loop {
            for ev in tail.poll() {
                tracing::info!(?ev, "guest event");
                match ev {
                    Event::ViewerUp(guest_addr) if !*ready => {
                        let address = self.net.reported_address(&guest_addr);
                        let report = self.rep.state(
                            ViewerState::Ready,
                            Some(address.clone()),
                            None,
                            Some("viewer is up".into()),
                        );
                        match report.await {
                            Ok(()) => *ready = true,
                            Err(e) => return stop_for_report_error(e).into(),
                        }
                        tracing::info!(%address, "viewer ready");
                    }
                    Event::Error(reason) => return End::Failure(format!("guest reported: {reason}")),
                    _ => {}
                }
            }
            if pending.is_none() && Instant::now() >= next_state {
                let name = self.name.to_string();
                pending = Some((Instant::now(), self.hv.spawn(move |h| h.state(&name))));
            }
            if let Some((since, call)) = &mut pending {
                if call.is_finished() {
                    let state = call.await.unwrap_or_else(|e| Err(HvError(e.to_string())));
                    pending = None;
                    next_state = Instant::now() + TICK;
                    match (&state, hv_down) {
                        (Err(e), false) => {
                            tracing::warn!(error = %e, "cannot read domain state; the viewer keeps serving")
                        }
                        (Ok(_), true) => tracing::info!("libvirt answers again"),
                        _ => {}
                    }
                    hv_down = state.is_err();
                    match state {
                        Ok(VmState::Running) | Err(_) => {}
                        Ok(VmState::Off) => return End::GuestOff,
                        Ok(VmState::Missing) => return End::Failure("the VM's domain vanished".into()),
                    }
                } else if since.elapsed() > self.hv.deadline && !hv_down {
                    hv_down = true;
                    tracing::warn!(
                        "libvirt did not answer domain state within {} s; the viewer keeps serving",
                        self.hv.deadline.as_secs()
                    );
                }
            }
            if !*ready && Instant::now() > boot_deadline {
                return End::Failure(format!("no VIEWERUP within {} s of boot", self.opts.boot_timeout.as_secs()));
            }
            tokio::select! {
                _ = tokio::time::sleep(if *ready { TICK } else { BOOT_TICK }) => {}
                why = stop.wait() => return why.into(),
            }
        }
    }

    /// The domain's state, or `None` when libvirt cannot say in time.
    async fn state(&self) -> Option<VmState> {
        let name = self.name.to_string();
        self.hv.call("domain state", move |h| h.state(&name)).await.ok()
    }

    /// Presses the power button and waits up to `stop_timeout` for the guest to save its
    /// database and power off. The press is repeated every few seconds (one that arrives
    /// before the guest's acpid runs is lost). Heartbeats go on meanwhile (their own task): a
    /// save that takes longer than the lease must not get the VM reaped.
    async fn power_off_gracefully(&self) {
        let deadline = Instant::now() + self.opts.stop_timeout;
        let mut next_press = Instant::now();
        while Instant::now() < deadline && matches!(self.state().await, Some(VmState::Running) | None) {
            if Instant::now() >= next_press {
                let name = self.name.to_string();
                if let Err(e) = self.hv.call("domain shutdown", move |h| h.shutdown(&name)).await {
                    tracing::warn!(error = %e, "ACPI shutdown refused");
                }
                next_press = Instant::now() + PRESS_AGAIN;
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Every path ends here: power button (for a viewer that served), destroy if needed,
    /// save, store, undefine, report.
    pub async fn teardown(&self, end: End, was_ready: bool) -> Exit {
        tracing::info!(?end, "tearing down");
        let mut tail = SerialTail::new(self.serial.clone());
        let mut failure = match &end {
            End::Failure(r) => Some(r.clone()),
            _ => None,
        };
        if !matches!(end, End::GuestOff) {
            // A viewer that never came up has saved nothing and served no one: pull the plug
            // at once instead of giving a booting guest a minute to notice the button.
            if was_ready {
                self.power_off_gracefully().await;
            }
            if !matches!(self.state().await, Some(VmState::Off) | Some(VmState::Missing)) {
                if was_ready {
                    tracing::warn!(domain = self.name, "guest did not power off in time; destroying it");
                    failure.get_or_insert_with(|| {
                        format!(
                            "the guest did not power off within {} s and was destroyed",
                            self.opts.stop_timeout.as_secs()
                        )
                    });
                }
                let name = self.name.to_string();
                if let Err(e) = self.hv.call("domain destroy", move |h| h.destroy(&name)).await {
                    tracing::warn!(error = %e, "cannot destroy the domain");
                }
            }
        }
        let _ = tail.poll();
        // Whatever the guest managed to save is stored, on every path: triage work is never lost.
        let out = self.out.clone();
        match blocking(move || disks::read_saved(&out)).await {
            Ok(Some(saved)) => match self.rep.store(&saved).await {
                Ok(()) => tracing::info!(sha256 = %saved.sha256, bytes = saved.bytes.len(), "viewer database stored"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot store the viewer database");
                    // Not lost with the work directory: agent-monitor's sweep stores it later.
                    let kept = match self.rep.keep_unstored(&self.out) {
                        Ok(at) => {
                            tracing::warn!(path = %at.display(), "output disk kept for agent-monitor's sweep to store");
                            format!("; kept at {} for the sweep to store", at.display())
                        }
                        Err(ke) => {
                            tracing::error!(error = %ke, "cannot keep the output disk; its database is lost");
                            format!("; the output disk could not be kept: {ke}")
                        }
                    };
                    failure.get_or_insert_with(|| format!("viewer database could not be stored: {e}{kept}"));
                }
            },
            Ok(None) => {
                // A viewer that served users must have saved; one stopped during boot had nothing.
                if was_ready && matches!(end, End::Requested(_) | End::GuestOff) {
                    failure.get_or_insert_with(|| {
                        let last = tail.recent.iter().rev().take(3).cloned().collect::<Vec<_>>().join(" | ");
                        format!("the guest stopped without saving its database (serial: {last})")
                    });
                }
            }
            Err(e) => {
                failure.get_or_insert_with(|| format!("the saved viewer database is corrupt and was not stored: {e}"));
            }
        }
        if let Err(e) = self.hv.remove_domain(self.name, self.opts.cleanup_patience).await {
            tracing::error!(error = %e, "cannot undefine the domain");
            failure.get_or_insert_with(|| format!("cannot undefine the domain: {e}"));
        }
        let (state, reason, exit) = match (failure, &end) {
            (Some(r), _) => (ViewerState::Failed, r, Exit::Failed),
            (None, End::Requested(r)) => (ViewerState::Stopped, format!("stopped: {r}"), Exit::Stopped),
            (None, _) => (ViewerState::Stopped, "the guest powered itself off".to_string(), Exit::Stopped),
        };
        if let Err(e) = self.rep.state(state, None, None, Some(reason.clone())).await {
            tracing::warn!(error = %e, "final state not recorded");
        }
        tracing::info!(%state, %reason, "run finished");
        exit
    }
}
