//! A typed client for agent-monitor's XML-RPC interface.

use dxr::Value;
use dxr_client::{Client, ClientBuilder};

use crate::fault::{FaultCode, RpcError};
use crate::methods::*;
use crate::names::Pair;

/// What can go wrong on a call: a fault from the daemon, or not reaching it at all.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("agent-monitor refused: {0}")]
    Fault(RpcError),
    #[error("cannot reach agent-monitor at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("bad reply from agent-monitor: {0}")]
    BadReply(String),
}

impl ClientError {
    pub fn fault_code(&self) -> Option<FaultCode> {
        match self {
            ClientError::Fault(e) => Some(e.code),
            _ => None,
        }
    }
}

pub struct AgentMonitorClient {
    url: String,
    inner: Client,
}

/// Credentials: HTTP Basic (user, secret) or a bearer token.
#[derive(Clone)]
pub enum Credentials {
    None,
    Basic { user: String, secret: String },
    Bearer(String),
}

/// Never prints the secret.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:..)"),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

impl Credentials {
    /// HTTP Basic as `role` with the secret read from `path` (agent-monitor writes them to
    /// `<state>/secrets/<role>.secret`).
    pub fn from_secret_file(role: &str, path: &std::path::Path) -> std::io::Result<Credentials> {
        let secret = std::fs::read_to_string(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read secret file {}: {e}", path.display())))?;
        Ok(Credentials::Basic { user: role.to_string(), secret: secret.trim().to_string() })
    }
}

/// Longest wait for one answer from agent-monitor (a 64 MiB storeviewer over a slow link
/// included).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl AgentMonitorClient {
    pub fn new(url: &str, creds: Credentials) -> Result<AgentMonitorClient, ClientError> {
        let parsed =
            url::Url::parse(url).map_err(|e| ClientError::Unreachable { url: url.into(), detail: e.to_string() })?;
        let mut b = ClientBuilder::new(parsed);
        match creds {
            Credentials::None => {}
            Credentials::Basic { user, secret } => b = b.basic_auth(user, Some(secret)),
            Credentials::Bearer(t) => {
                let v = http::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|e| ClientError::BadReply(e.to_string()))?;
                b = b.add_header(http::header::AUTHORIZATION, v);
            }
        }
        Ok(AgentMonitorClient { url: url.into(), inner: b.build() })
    }

    /// One raw call; faults with unknown codes map to `Internal`.
    ///
    /// Every call has a deadline ([`CALL_TIMEOUT`]): a daemon that accepted the connection
    /// and then stopped answering must not hang a job's heartbeat or a click forever. A call
    /// that runs out of time is `Unreachable`, like one that could not connect.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.inner.call::<Vec<Value>, Value>(method, params)).await;
        let Ok(answer) = answer else {
            return Err(ClientError::Unreachable {
                url: self.url.clone(),
                detail: format!("no answer to {method} within {} s", CALL_TIMEOUT.as_secs()),
            });
        };
        match answer {
            Ok(v) => Ok(v),
            Err(dxr_client::Error::Fault { fault }) => Err(ClientError::Fault(RpcError::new(
                FaultCode::from_code(fault.code()).unwrap_or(FaultCode::Internal),
                fault.string(),
            ))),
            Err(dxr_client::Error::Net { error }) => {
                Err(ClientError::Unreachable { url: self.url.clone(), detail: error_chain(&error) })
            }
            Err(e) => Err(ClientError::BadReply(e.to_string())),
        }
    }

    pub async fn launch_viewer(&self, req: &LaunchViewer) -> Result<LaunchReply, ClientError> {
        let v = self.call(LAUNCH_VIEWER, req.to_params()).await?;
        LaunchReply::from_value(&v).map_err(bad)
    }

    pub async fn is_viewer_available(&self, pair: &Pair) -> Result<Availability, ClientError> {
        let v = self.call(IS_VIEWER_AVAILABLE, IsViewerAvailable { pair: pair.clone() }.to_params()).await?;
        Availability::from_value(&v).map_err(bad)
    }

    pub async fn set_viewer_state(&self, req: &SetViewerState) -> Result<(), ClientError> {
        self.call(SET_VIEWER_STATE, req.to_params()).await.map(drop)
    }

    pub async fn heartbeat(&self, pair: &Pair, generation: i64) -> Result<bool, ClientError> {
        let v = self.call(HEARTBEAT, GenerationRef { pair: pair.clone(), generation }.to_params()).await?;
        heartbeat_from_value(&v).map_err(bad)
    }

    pub async fn abort_viewer(&self, pair: &Pair) -> Result<(), ClientError> {
        self.call(ABORT_VIEWER, PairRef { pair: pair.clone() }.to_params()).await.map(drop)
    }

    pub async fn store_viewer(&self, req: &StoreViewer) -> Result<(), ClientError> {
        self.call(STORE_VIEWER, req.to_params()).await.map(drop)
    }

    pub async fn viewer_status(&self, pair: &Pair) -> Result<InstanceRecord, ClientError> {
        let v = self.call(VIEWER_STATUS, PairRef { pair: pair.clone() }.to_params()).await?;
        InstanceRecord::from_value(&v).map_err(bad)
    }

    pub async fn host_info(&self) -> Result<HostInfo, ClientError> {
        let v = self.call(HOST_INFO, vec![]).await?;
        HostInfo::from_value(&v).map_err(bad)
    }

    pub async fn list_viewers(&self) -> Result<Vec<InstanceRecord>, ClientError> {
        match self.call(LIST_VIEWERS, vec![]).await? {
            Value::Array(items) => items.iter().map(|v| InstanceRecord::from_value(v).map_err(bad)).collect(),
            _ => Err(ClientError::BadReply("listViewers did not return an array".into())),
        }
    }
}

impl AgentMonitorClient {
    /// A single-use login link's parts for `user` at the pair's viewer (docs/frontdoor.md).
    pub async fn viewer_login(
        &self,
        req: &crate::frontdoor::ViewerLogin,
    ) -> Result<crate::frontdoor::LoginReply, ClientError> {
        let v = self.call(crate::frontdoor::VIEWER_LOGIN, req.to_params()).await?;
        crate::frontdoor::LoginReply::from_value(&v).map_err(bad)
    }

    pub async fn claim_push(&self, req: &ClaimPush) -> Result<PushStatus, ClientError> {
        let v = self.call(CLAIM_PUSH, req.to_params()).await?;
        PushStatus::from_value(&v).map_err(bad)
    }

    pub async fn push_done(&self, req: &PushDone) -> Result<(), ClientError> {
        self.call(PUSH_DONE, req.to_params()).await.map(drop)
    }

    /// The job description's JSON text, for a job that shares no filesystem with agent-monitor.
    pub async fn fetch_job(&self, pair: &Pair, generation: i64) -> Result<String, ClientError> {
        let v = self.call(FETCH_JOB, GenerationRef { pair: pair.clone(), generation }.to_params()).await?;
        fetch_job_from_value(&v).map_err(bad)
    }

    pub async fn fetch_viewer_db(&self, req: &FetchViewerDb) -> Result<DbChunk, ClientError> {
        let v = self.call(FETCH_VIEWER_DB, req.to_params()).await?;
        DbChunk::from_value(&v).map_err(bad)
    }
}

impl AgentMonitorClient {
    /// A DomainMonitor's report of its node's domains (role `node`).
    pub async fn node_inventory(
        &self,
        req: &crate::node::NodeInventory,
    ) -> Result<crate::node::InventoryReply, ClientError> {
        let v = self.call(NODE_INVENTORY, req.to_params()).await?;
        crate::node::InventoryReply::from_value(&v).map_err(bad)
    }

    /// A DomainMonitor hands over what a domain whose job was gone saved (role `node`).
    pub async fn node_salvaged(
        &self,
        req: &crate::node::NodeSalvaged,
    ) -> Result<crate::node::SalvagedReply, ClientError> {
        let v = self.call(NODE_SALVAGED, req.to_params()).await?;
        crate::node::SalvagedReply::from_value(&v).map_err(bad)
    }
}

fn bad(e: RpcError) -> ClientError {
    ClientError::BadReply(e.message)
}

/// reqwest's Display stops at "error sending request"; the cause (connection refused) is what
/// an operator needs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
