//! `agentMonitor.heartbeat`: renews a job's lease and tells it whether to keep running.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{heartbeat_reply, GenerationRef};
use vrun_proto::{FaultCode, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances;
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = GenerationRef::from_params(&params)?;
    crate::metrics::global().heartbeats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let lease_ms = m.timing.lease.as_millis() as i64;
    let asked = req.clone();
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
        .await;
    match cont {
        Ok(cont) => Ok(heartbeat_reply(cont)),
        // The store cannot commit (a full disk): keep the renewal in memory and answer from
        // the live map, so that a few seconds of full disk neither stop the viewer nor cost
        // it its lease later (issue 13). The reaper writes the renewal when it can.
        Err(e) if e.code == FaultCode::Internal => {
            let Some(live) = m.store.live(&asked.pair)?.filter(|l| l.generation == asked.generation) else {
                return Ok(heartbeat_reply(false));
            };
            m.renewals.lock().unwrap_or_else(|p| p.into_inner()).insert(asked.generation, now_ms() + lease_ms);
            tracing::warn!(pair = %asked.pair, generation = asked.generation, "store cannot commit; lease renewed in memory");
            Ok(heartbeat_reply(live.state != ViewerState::Stopping))
        }
        Err(e) => Err(e),
    }
}
