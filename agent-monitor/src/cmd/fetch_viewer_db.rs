//! `agentMonitor.fetchViewerDb`: the database archive a job restores, in bounded chunks
//! (at most `DB_CHUNK_MAX` per call, so no answer approaches a body limit and a slow link
//! costs many short calls rather than one that times out). The job verifies the whole
//! against `db_sha256` from its description.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{DbChunk, FetchViewerDb};
use vrun_proto::{FaultCode, RpcError};

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = FetchViewerDb::from_params(&params)?;
    let (pair, generation) = (req.pair.clone(), req.generation);
    let inst = m.store.read(move |c| instances::current(c, &pair, generation)).await?;
    let Some(path) = inst.db_path else {
        return Err(RpcError::new(
            FaultCode::UnknownInstance,
            format!("generation {generation} of {} restores no database", req.pair),
        ));
    };
    let (offset, length) = (req.offset, req.length);
    let read = tokio::task::spawn_blocking(move || -> Result<DbChunk, RpcError> {
        let io =
            |e: std::io::Error| RpcError::new(FaultCode::Internal, format!("cannot read the database to restore: {e}"));
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len() as i64;
        if offset > size {
            return Err(RpcError::invalid_params(format!("offset {offset} is past the archive's end ({size} bytes)")));
        }
        f.seek(SeekFrom::Start(offset as u64)).map_err(io)?;
        let mut data = Vec::with_capacity(length.min(size - offset) as usize);
        f.take(length as u64).read_to_end(&mut data).map_err(io)?;
        Ok(DbChunk { data, size })
    });
    let chunk = read.await.map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))??;
    Ok(chunk.to_value())
}
