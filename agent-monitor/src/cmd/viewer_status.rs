//! `agentMonitor.viewerStatus`: the pair's newest instance with its whole history.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::PairRef;
use vrun_proto::{FaultCode, RpcError};

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = PairRef::from_params(&params)?;
    let record = m
        .store
        .read(move |c| {
            let inst = instances::latest(c, &req.pair)?
                .ok_or_else(|| RpcError::new(FaultCode::UnknownInstance, format!("no viewer {}", req.pair)))?;
            let mut rec = inst.record();
            rec.history = instances::history(c, inst.generation)?;
            rec.waiting = crate::capacity::place_in_line(c, inst.generation)?;
            Ok(rec)
        })
        .await?;
    Ok(record.to_value())
}
