//! `agentMonitor.abortViewer`: asks the pair's running job to stop (via its next heartbeat).
//! The job saves the viewer database before it tears the VM down.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::PairRef;
use vrun_proto::{FaultCode, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances;
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = PairRef::from_params(&params)?;
    m.store
        .write(move |c| match instances::live(c, &req.pair)? {
            Some(mut inst) if inst.state != ViewerState::Stopping => {
                instances::transition(c, &mut inst, ViewerState::Stopping, "abort requested", now_ms())
            }
            Some(_) => Ok(()),
            None if instances::latest(c, &req.pair)?.is_some() => Ok(()),
            None => Err(RpcError::new(FaultCode::UnknownInstance, format!("no viewer {}", req.pair)).into()),
        })
        .await?;
    Ok(Value::Integer(1))
}
