//! `agentMonitor.storeviewer`: keeps a viewer database archive so the next launch restores it.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::StoreViewer;
use vrun_proto::{FaultCode, RpcError};

use crate::archives;
use crate::cmd::set_viewer_state::current;
use crate::monitor::Monitor;
use crate::store::now_ms;

pub async fn run(m: Arc<Monitor>, params: Vec<Value>) -> Result<Value, RpcError> {
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
    let (pair, generation) = (req.pair.clone(), req.generation);
    m.store.read(move |c| current(c, &pair, generation).map(drop)).await?;

    let path = archives::archive_path(&m.archive_dir, &req.pair, req.generation, &req.checksum);
    let (p2, bytes) = (path.clone(), req.viewerdb);
    let size = bytes.len();
    tokio::task::spawn_blocking(move || archives::write_file(&p2, &bytes))
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))??;

    let keep = m.archives_keep;
    let dropped = m
        .store
        .write(move |c| {
            current(c, &req.pair, req.generation)?;
            let stored = archives::Stored { pair: &req.pair, generation: req.generation, checksum: &req.checksum, size, path: &path };
            archives::record(c, &stored, keep, now_ms())
        })
        .await?;
    for old in dropped {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), error = %e, "cannot remove old archive");
        }
    }
    Ok(Value::Integer(1))
}
