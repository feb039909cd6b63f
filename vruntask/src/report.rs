//! Talking to agent-monitor on behalf of one job (one pair, one generation).

use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, ClientError, Credentials};
use vrun_proto::methods::{SetViewerState, StoreViewer};
use vrun_proto::{Pair, ViewerState};

use crate::disks::Saved;

pub struct Reporter {
    client: AgentMonitorClient,
    pub pair: Pair,
    pub generation: i64,
    /// How long final reports keep retrying while agent-monitor is unreachable (it may be
    /// restarting; these reports must not be lost).
    patience: Duration,
}

impl Reporter {
    pub fn new(url: &str, token: Option<String>, pair: Pair, generation: i64) -> Result<Reporter, ClientError> {
        let creds = match token {
            Some(t) => Credentials::Bearer(t),
            None => Credentials::None,
        };
        Ok(Reporter { client: AgentMonitorClient::new(url, creds)?, pair, generation, patience: Duration::from_secs(120) })
    }

    fn req(&self, state: ViewerState, ip: Option<String>, domain: Option<String>, message: Option<String>) -> SetViewerState {
        SetViewerState { pair: self.pair.clone(), generation: self.generation, state, ipaddress: ip, domain, message }
    }

    /// Reports a state; retried while agent-monitor is unreachable.
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
                Err(ClientError::Unreachable { .. }) if Instant::now() < end => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}
