//! `agentMonitor.heartbeat`: renews a job's lease and tells it whether to keep running.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{heartbeat_reply, GenerationRef};
use vrun_proto::{RpcError, ViewerState};

use crate::instances;
use crate::daemon::Daemon;
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = GenerationRef::from_params(&params)?;
    let lease_ms = m.timing.lease.as_millis() as i64;
    let cont = m
        .store
        .write(move |c| {
            // A job whose generation is no longer current (or whose instance ended) must stop:
            // answer false rather than fault, so even an old job shuts its VM down.
            let Some(inst) = instances::latest(c, &req.pair)?.filter(|i| i.generation == req.generation) else {
                return Ok(false);
            };
            if inst.state.is_terminal() {
                return Ok(false);
            }
            instances::set_lease(c, inst.generation, now_ms() + lease_ms)?;
            Ok(inst.state != ViewerState::Stopping)
        })
        .await?;
    Ok(heartbeat_reply(cont))
}
