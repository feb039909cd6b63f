//! `agentMonitor.deleteViewerDbs` (admin): removes every stored database of a pair, like
//! SWAMP's deleteDataVolume. The caller repeats the pair in `confirm`; a pair with a live
//! instance is refused (its job would store again, and its users would lose what they see).

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::DeleteViewerDbs;
use vrun_proto::{FaultCode, RpcError};

use crate::archives;
use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = DeleteViewerDbs::from_params(&params)?;
    let pair = req.pair.clone();
    let files = m
        .store
        .write(move |c| {
            if let Some(i) = instances::live(c, &pair)? {
                return Err(RpcError::new(
                    FaultCode::IllegalTransition,
                    format!("{pair} is {} (generation {}): stop it first; nothing was deleted", i.state, i.generation),
                )
                .into());
            }
            archives::delete_all(c, &pair)
        })
        .await?;
    let count = files.len();
    for f in files {
        if let Err(e) = std::fs::remove_file(&f) {
            tracing::warn!(path = %f.display(), error = %e, "cannot remove a deleted archive's file");
        }
    }
    tracing::info!(pair = %req.pair, count, "stored databases deleted by an admin");
    Ok(Value::Integer(count as i32))
}
