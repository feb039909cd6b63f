//! Talking to agent-monitor on behalf of one job (one pair, one generation).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, ClientError, Credentials};
use vrun_proto::methods::{SetViewerState, StoreViewer};
use vrun_proto::{FaultCode, Pair, ViewerState};

use crate::disks::Saved;

pub struct Reporter {
    client: AgentMonitorClient,
    pub pair: Pair,
    pub generation: i64,
    /// How long final reports keep retrying while agent-monitor is unreachable or cannot
    /// store (it may be restarting, its disk may be full; these reports must not be lost).
    patience: Duration,
    /// Where the output disk is kept when its database cannot be stored (see [`Reporter::keep_unstored`]).
    unstored: Option<PathBuf>,
}

/// Whether a failed call may succeed later: agent-monitor unreachable, or it answered fault
/// 11 (it could not commit: a full disk) or 12 (it is shutting down). A few seconds of full
/// disk ended every running viewer and lost the database each had just saved (issue 13).
pub fn retryable(e: &ClientError) -> bool {
    matches!(e, ClientError::Unreachable { .. })
        || matches!(e.fault_code(), Some(FaultCode::Internal) | Some(FaultCode::ShuttingDown))
}

impl Reporter {
    pub fn new(url: &str, token: Option<String>, pair: Pair, generation: i64) -> Result<Reporter, ClientError> {
        let creds = match token {
            Some(t) => Credentials::Bearer(t),
            None => Credentials::None,
        };
        Ok(Reporter {
            client: AgentMonitorClient::new(url, creds)?,
            pair,
            generation,
            patience: Duration::from_secs(120),
            unstored: None,
        })
    }

    /// Names where [`Reporter::keep_unstored`] puts an output disk: `jobs/g<N>.unstored`
    /// beside the job file, in agent-monitor's state directory, whose sweep stores it.
    pub fn with_unstored(mut self, path: PathBuf) -> Reporter {
        self.unstored = Some(path);
        self
    }

    /// Moves the output disk out of the work directory (which is removed at the end of the
    /// run) to the place agent-monitor's sweep stores it from. A rename: on a full disk a
    /// copy would fail. Returns where it is now.
    pub fn keep_unstored(&self, out: &Path) -> std::io::Result<PathBuf> {
        let to = self.unstored.clone().ok_or_else(|| std::io::Error::other("no place for an unstored database"))?;
        std::fs::rename(out, &to)?;
        if let Some(dir) = to.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(to)
    }

    fn req(
        &self,
        state: ViewerState,
        ip: Option<String>,
        domain: Option<String>,
        message: Option<String>,
    ) -> SetViewerState {
        SetViewerState { pair: self.pair.clone(), generation: self.generation, state, ipaddress: ip, domain, message }
    }

    /// Reports a state; retried while agent-monitor is unreachable or cannot store.
    pub async fn state(
        &self,
        state: ViewerState,
        ip: Option<String>,
        domain: Option<String>,
        message: Option<String>,
    ) -> Result<(), ClientError> {
        let req = self.req(state, ip, domain, message);
        self.retrying(|| self.client.set_viewer_state(&req)).await
    }

    pub async fn heartbeat(&self) -> Result<bool, ClientError> {
        self.client.heartbeat(&self.pair, self.generation).await
    }

    pub async fn store(&self, saved: &Saved) -> Result<(), ClientError> {
        let req = StoreViewer {
            pair: self.pair.clone(),
            generation: self.generation,
            viewerdb: saved.bytes.clone(),
            checksum: saved.sha256.clone(),
        };
        self.retrying(|| self.client.store_viewer(&req)).await
    }

    async fn retrying<F, Fut>(&self, mut call: F) -> Result<(), ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), ClientError>>,
    {
        let end = Instant::now() + self.patience;
        let mut wait = Duration::from_millis(200);
        loop {
            match call().await {
                Err(e) if retryable(&e) && Instant::now() < end => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrun_proto::RpcError;

    #[test]
    fn storage_faults_and_shutdown_are_retried_refusals_are_not() {
        let fault = |code| ClientError::Fault(RpcError::new(code, "x"));
        assert!(retryable(&ClientError::Unreachable { url: "u".into(), detail: "d".into() }));
        assert!(retryable(&fault(FaultCode::Internal)), "fault 11: a full disk on agent-monitor's side");
        assert!(retryable(&fault(FaultCode::ShuttingDown)), "fault 12: agent-monitor restarting");
        for code in [FaultCode::StaleGeneration, FaultCode::NotAuthorised, FaultCode::BadChecksum] {
            assert!(!retryable(&fault(code)), "{code:?}");
        }
    }

    #[test]
    fn an_unstored_output_disk_is_moved_out_of_the_work_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("work/out.img");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, b"disk").unwrap();
        let pair = Pair::new("p", "v").unwrap();
        let rep = Reporter::new("http://127.0.0.1:9/RPC2", None, pair, 4)
            .unwrap()
            .with_unstored(dir.path().join("g4.unstored"));
        let at = rep.keep_unstored(&out).unwrap();
        assert_eq!(at, dir.path().join("g4.unstored"));
        assert_eq!(std::fs::read(&at).unwrap(), b"disk");
        assert!(!out.exists());
    }
}
