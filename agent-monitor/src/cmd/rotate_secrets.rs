//! `agentMonitor.rotateSecrets` (admin): fresh secrets for the named roles (all when none
//! are named), without stopping anything. Old role secrets are refused at once; the old job
//! key is accepted for the job-key grace, so running viewers keep reporting.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::value::StructReader;
use vrun_proto::{FaultCode, RpcError};

use crate::auth::ROLES;
use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let roles: Vec<String> = if params.is_empty() {
        ROLES.iter().map(|r| r.to_string()).collect()
    } else {
        let mut r = StructReader::single(&params)?;
        let roles = r.opt_str_array("roles")?.unwrap_or_default();
        r.finish()?;
        roles
    };
    if let Some(bad) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(RpcError::invalid_params(format!("no role {bad:?}: roles are {}", ROLES.join(", "))));
    }
    let (secrets, grace, rotating) = (Arc::clone(&m.job_ctx.secrets), m.timing.job_key_grace, roles.clone());
    tokio::task::spawn_blocking(move || {
        secrets.rotate(&rotating.iter().map(String::as_str).collect::<Vec<_>>(), grace)
    })
    .await
    .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))?
    .map_err(|e| RpcError::new(FaultCode::Internal, format!("cannot rotate secrets: {e}")))?;
    tracing::info!(?roles, grace_secs = grace.as_secs(), "secrets rotated");
    Ok(Value::Array(roles.into_iter().map(Value::String).collect()))
}
