//! The agent-monitor side: is the pair's viewer ready; if not, launch it and (with
//! `--wait`) follow it until it is ready, fails, or the wait runs out.
//!
//! agent-monitor owns the one-viewer-per-pair lock, so this side never decides anything
//! about launching: it asks `launchViewer` (which creates or returns the holder) and
//! watches the generation it was given.

use std::future::Future;
use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, ClientError, Credentials};
use vrun_proto::methods::{Availability, ClaimPush, InstanceRecord, LaunchReply, LaunchViewer, PushDone, PushStatus};
use vrun_proto::{FaultCode, Pair, RpcError};

use crate::progress::Progress;
use crate::Pacer;

/// No single call may hang a click: agent-monitor answers in milliseconds when healthy.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("invalid --agent-monitor URL {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("{detail} (pass the launcher secret with --secret-file or AGENT_MONITOR_SECRET_FILE)")]
    Credentials { detail: String },
    #[error("cannot reach agent-monitor at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("agent-monitor refused {method}: {} (fault {}){}", .err.message, .err.code.code(), hint(.err.code))]
    Fault { method: &'static str, err: RpcError },
    #[error("unexpected reply from agent-monitor to {method}: {detail}")]
    BadReply { method: &'static str, detail: String },
    #[error("viewer {pair} failed to start (generation {generation}): {reason}; View again to retry, or ask an administrator to check agent-monitor's log")]
    Failed { pair: String, generation: i64, reason: String },
    #[error("viewer not ready after {secs} s (state {state}); it keeps starting: View again later")]
    NotReady { secs: u64, state: String },
}

fn hint(code: FaultCode) -> &'static str {
    match code {
        FaultCode::ShuttingDown => "; agent-monitor is restarting: View again in a minute",
        FaultCode::Internal => "; ask an administrator to check agent-monitor's log",
        FaultCode::NotAuthorised => "; check the launcher secret (--secret-file)",
        _ => "",
    }
}

impl MonitorError {
    /// Whether the generation this call named is over (a newer one exists, or none does).
    pub fn is_gone(&self) -> bool {
        matches!(self, MonitorError::Fault { err, .. }
            if matches!(err.code, FaultCode::StaleGeneration | FaultCode::UnknownInstance))
    }

    fn is_unreachable(&self) -> bool {
        matches!(self, MonitorError::Unreachable { .. })
    }
}

/// What a wait ended with, short of an error.
#[derive(Debug)]
pub enum Waited {
    Ready(Availability),
    /// Without `--wait`: the viewer is on its way; `state` as agent-monitor reported it.
    Launching {
        state: String,
        generation: i64,
    },
}

pub struct Monitor {
    url: String,
    client: AgentMonitorClient,
}

impl Monitor {
    pub fn new(url: &str, secret_file: &std::path::Path) -> Result<Monitor, MonitorError> {
        let parsed_ok = url.starts_with("http://") || url.starts_with("https://");
        let creds = Credentials::from_secret_file("launcher", secret_file)
            .map_err(|e| MonitorError::Credentials { detail: e.to_string() })?;
        let client = AgentMonitorClient::new(url, creds)
            .ok()
            .filter(|_| parsed_ok)
            .ok_or_else(|| MonitorError::BadUrl { url: url.into(), detail: "expected http://host:port/RPC2".into() })?;
        Ok(Monitor { url: url.into(), client })
    }

    async fn call<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, MonitorError> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Err(_) => Err(MonitorError::Unreachable {
                url: self.url.clone(),
                cause: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(ClientError::Fault(err))) => Err(MonitorError::Fault { method, err }),
            Ok(Err(ClientError::Unreachable { detail, .. })) => {
                Err(MonitorError::Unreachable { url: self.url.clone(), cause: short_cause(&detail) })
            }
            Ok(Err(ClientError::BadReply(detail))) => Err(MonitorError::BadReply { method, detail }),
        }
    }

    pub async fn available(&self, pair: &Pair) -> Result<Availability, MonitorError> {
        self.call("isViewerAvailable", self.client.is_viewer_available(pair)).await
    }

    async fn launch(&self, pair: &Pair, user: Option<&str>) -> Result<LaunchReply, MonitorError> {
        let mut req = LaunchViewer::new(pair.clone());
        req.user = user.map(str::to_owned);
        self.call("launchViewer", self.client.launch_viewer(&req)).await
    }

    async fn status(&self, pair: &Pair) -> Result<InstanceRecord, MonitorError> {
        self.call("viewerStatus", self.client.viewer_status(pair)).await
    }

    pub async fn claim_push(&self, req: &ClaimPush) -> Result<PushStatus, MonitorError> {
        self.call("claimPush", self.client.claim_push(req)).await
    }

    pub async fn viewer_login(
        &self,
        req: &vrun_proto::frontdoor::ViewerLogin,
    ) -> Result<vrun_proto::frontdoor::LoginReply, MonitorError> {
        self.call("viewerLogin", self.client.viewer_login(req)).await
    }

    pub async fn push_done(&self, req: &PushDone) -> Result<(), MonitorError> {
        self.call("pushDone", self.client.push_done(req)).await
    }

    /// Returns the ready viewer, or (without a deadline) what is being launched.
    pub async fn ready_or_launch(
        &self,
        pair: &Pair,
        user: Option<&str>,
        deadline: Option<Instant>,
        wait: Option<Duration>,
        progress: &Progress,
    ) -> Result<Waited, MonitorError> {
        progress.state("asking agent-monitor");
        // The first call fails fast: if agent-monitor is down there is nothing to wait for.
        let mut avail = self.available(pair).await?;
        // The generation being followed, and the one a relaunch was last asked for.
        let mut watching = avail.generation;
        let mut asked_for: Option<i64> = None;
        let mut pacer = Pacer::default();
        loop {
            if avail.ready {
                progress.state(&format!("viewer ready at {}", avail.address));
                return Ok(Waited::Ready(avail));
            }
            // Nothing holds the pair, or it is stopping (agent-monitor queues the click and
            // relaunches after the stop; SWAMP dropped it): ask for a launch, once per state.
            let nothing_live = avail.state.is_empty();
            let stopping = avail.state == "stopping" && asked_for != Some(avail.generation);
            if nothing_live || stopping || asked_for.is_none() {
                let reply = self.launch(pair, user).await?;
                asked_for = Some(reply.generation);
                watching = reply.generation;
                let state = reply.state.as_str().to_owned();
                progress.state(&if reply.queued { format!("{state} (relaunch queued)") } else { state.clone() });
                if deadline.is_none() {
                    return Ok(Waited::Launching { state, generation: reply.generation });
                }
                // The launch reply is newer than `avail`; look again after the pause.
                avail.state = state;
                avail.generation = reply.generation;
            }
            let Some(deadline) = deadline else {
                return Ok(Waited::Launching { state: avail.state, generation: avail.generation });
            };
            let pause = pacer.pause();
            if Instant::now() + pause > deadline {
                let state = if avail.state.is_empty() { "none".to_owned() } else { avail.state };
                return Err(MonitorError::NotReady { secs: wait.unwrap_or_default().as_secs(), state });
            }
            tokio::time::sleep(pause).await;
            avail = match self.available(pair).await {
                Ok(a) => a,
                // agent-monitor restarting mid-wait is survivable: it keeps its state.
                Err(e) if e.is_unreachable() => {
                    progress.state(&format!("{e}; retrying"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if avail.generation != watching {
                // The followed instance ended (or was replaced): failed ends the wait.
                if let Some(reason) = self.failure(pair, watching).await? {
                    return Err(MonitorError::Failed { pair: pair.to_string(), generation: watching, reason });
                }
                watching = avail.generation;
            }
            // `ready` is reported with its address at the top of the loop.
            if avail.waiting > 0 {
                progress.state(&format!("waiting for room: number {} in line", avail.waiting));
            } else if !avail.state.is_empty() && !avail.ready {
                progress.state(&avail.state);
            }
        }
    }

    /// The reason `generation` (or a newer one) failed, if it did.
    async fn failure(&self, pair: &Pair, generation: i64) -> Result<Option<String>, MonitorError> {
        match self.status(pair).await {
            Ok(rec) if rec.generation >= generation && rec.state == "failed" => {
                let reason = if rec.reason.is_empty() { "no reason recorded".to_owned() } else { rec.reason };
                Ok(Some(reason))
            }
            Ok(_) => Ok(None),
            Err(e) if e.is_gone() || e.is_unreachable() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// reqwest reports "error sending request for url (...): client error (Connect): tcp
/// connect error: Connection refused (os error 111)"; the last cause is what an operator
/// needs, in the style of the rest of the line.
pub fn short_cause(detail: &str) -> String {
    let last = detail.rsplit(": ").find(|s| !s.trim().is_empty()).unwrap_or(detail).trim();
    let last = match last.rfind(" (os error ") {
        Some(i) if last.ends_with(')') => &last[..i],
        _ => last,
    };
    let mut c = last.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::short_cause;

    #[test]
    fn causes_are_short() {
        let d = "error sending request for url (http://127.0.0.1:9/RPC2): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(short_cause(d), "connection refused");
        assert_eq!(short_cause("operation timed out"), "operation timed out");
    }
}
