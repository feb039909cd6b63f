//! `agentMonitor.abortViewer`: asks the pair's running job to stop (via its next heartbeat).
//! The job saves the viewer database before it tears the VM down.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::PairRef;
use vrun_proto::{FaultCode, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances::{self, ItsJob};
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = PairRef::from_params(&params)?;
    let ctx = m.job_ctx.clone();
    let effects = m
        .store
        .write(move |c| match instances::live(c, &req.pair)? {
            // No job yet, so nobody would report the stop: it ends here, out of the line.
            Some(mut inst) if inst.waiting => instances::finish(
                c,
                &mut inst,
                ViewerState::Stopped,
                "stopped while waiting for room",
                &ctx,
                now_ms(),
                ItsJob::Leave,
            ),
            Some(mut inst) if inst.state != ViewerState::Stopping => {
                instances::transition(c, &mut inst, ViewerState::Stopping, "abort requested", now_ms())?;
                Ok(Vec::new())
            }
            Some(_) => Ok(Vec::new()),
            None if instances::latest(c, &req.pair)?.is_some() => Ok(Vec::new()),
            None => Err(RpcError::new(FaultCode::UnknownInstance, format!("no viewer {}", req.pair)).into()),
        })
        .await?;
    m.apply(effects);
    Ok(Value::Integer(1))
}
