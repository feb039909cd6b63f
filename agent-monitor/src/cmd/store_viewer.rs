//! `agentMonitor.storeviewer`: keeps a viewer database archive so the next launch restores it.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::StoreViewer;
use vrun_proto::{FaultCode, RpcError};

use crate::archives;
use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = StoreViewer::from_params(&params)?;
    let actual = archives::sha256_hex(&req.viewerdb);
    if actual != req.checksum {
        return Err(RpcError::new(
            FaultCode::BadChecksum,
            format!("archive checksum is {actual}, the request says {}", req.checksum),
        ));
    }
    // Only the pair's newest generation may store (its state may already be terminal: a job
    // salvaging the database after its lease ran out still saves the user's work).
    archives::keep(&m.store, &m.archives, &req.pair, req.generation, &req.checksum, req.viewerdb).await?;
    Ok(Value::Integer(1))
}
