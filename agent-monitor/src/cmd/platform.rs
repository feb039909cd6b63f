//! `agentMonitor.addPlatform`, `listPlatforms`, `removePlatform` (admin): viewer images
//! checked in a scratch VM before users get them (see [`crate::platforms`]).

use std::sync::Arc;

use dxr::Value;
use vrun_proto::value::{StructBuilder, StructReader};
use vrun_proto::{FaultCode, RpcError};

use crate::daemon::Daemon;
use crate::{platform_check, platforms};

/// `{name, path}`: `path` is an absolute path to the image (directory or file) on this host,
/// and on every node in the image directory under the same file name.
pub async fn add(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let mut r = StructReader::single(&params)?;
    let name = r.req_str("name")?;
    let path = r.req_str("path")?;
    r.finish()?;
    platforms::check_pair(&name)?;
    let p = std::path::PathBuf::from(&path);
    if !p.is_absolute() || path.contains('\0') || path.len() > 4096 {
        return Err(RpcError::invalid_params("path must be an absolute path to the image"));
    }
    let sum = tokio::task::spawn_blocking(move || vrun_proto::platform::checksum(&p))
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))?
        .map_err(|e| RpcError::invalid_params(format!("cannot read the image {path}: {e}")))?;
    let (ctx, n, pa) = (m.job_ctx.clone(), name.clone(), path.clone());
    let (generation, effects) = m.store.write(move |c| platform_check::add(c, &n, &pa, &sum, &ctx)).await?;
    m.apply(effects);
    tokio::spawn(platform_check::check(Arc::clone(&m), name.clone(), generation));
    tracing::info!(platform = %name, %path, generation, "checking a platform in a scratch VM");
    Ok(StructBuilder::new().str("name", name).str("state", "validating").int("generation", generation).build())
}

pub async fn list(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    if !params.is_empty() {
        return Err(RpcError::invalid_params("listPlatforms takes no parameters"));
    }
    let (all, current) = m.store.read(|c| Ok((platforms::list(c)?, platforms::current(c)?))).await?;
    Ok(Value::Array(
        all.into_iter()
            .map(|p| {
                let is_current = current.as_ref().is_some_and(|(path, sum)| *path == p.path && *sum == p.sha256)
                    && p.state == "approved";
                StructBuilder::new()
                    .str("name", p.name)
                    .str("path", p.path)
                    .str("sha256", p.sha256)
                    .str("state", p.state)
                    .str("reason", p.reason)
                    .int("generation", p.generation.unwrap_or(0))
                    .value("added", Value::Double(p.added_ms as f64 / 1000.0))
                    .value("updated", Value::Double(p.updated_ms as f64 / 1000.0))
                    .bool("current", is_current)
                    .build()
            })
            .collect(),
    ))
}

pub async fn remove(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let mut r = StructReader::single(&params)?;
    let name = r.req_str("name")?;
    r.finish()?;
    let n = name.clone();
    if !m.store.write(move |c| platforms::remove(c, &n)).await? {
        return Err(RpcError::new(FaultCode::UnknownInstance, format!("no platform {name:?}")));
    }
    tracing::info!(platform = %name, "platform retired");
    Ok(Value::Integer(1))
}
