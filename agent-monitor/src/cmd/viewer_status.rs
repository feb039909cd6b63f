//! `agentMonitor.viewerStatus`: the pair's newest instance with its whole history.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::PairRef;
use vrun_proto::{FaultCode, RpcError};

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = PairRef::from_params(&params)?;
    let mut record = m
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
    // Where a node reports its domains, say whether this one exists (a cheap in-memory
    // look-up; the local libvirt is asked only by listViewers).
    if let Some(exists) = m.nodes.domain_exists(&record.node, record.generation, &m.job_ctx.monitor_id) {
        record.domain_exists = if exists { "yes" } else { "no" }.into();
    }
    Ok(record.to_value())
}
