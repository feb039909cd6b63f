//! `agentMonitor.setViewerState`: a job reports its viewer's progress, fenced by generation.

use std::sync::Arc;

use dxr::Value;
use rusqlite::Connection;
use vrun_proto::methods::SetViewerState;
use vrun_proto::{FaultCode, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances::{self, Effect, ItsJob, JobContext};
use crate::store::{now_ms, Db};

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = SetViewerState::from_params(&params)?;
    let ctx = m.job_ctx.clone();
    let lease_ms = m.timing.lease.as_millis() as i64;
    let (effects, became_ready) = m.store.write(move |c| decide(c, &req, &ctx, lease_ms)).await?;
    if let Some(created_ms) = became_ready {
        crate::metrics::global()
            .click_to_ready
            .observe(std::time::Duration::from_millis((now_ms() - created_ms).max(0) as u64));
    }
    m.apply(effects);
    Ok(Value::Integer(1))
}

/// The effects, and the instance's creation time when this report made it ready (for the
/// click-to-ready histogram, observed only once the report is committed).
fn decide(c: &Connection, req: &SetViewerState, ctx: &JobContext, lease_ms: i64) -> Db<(Vec<Effect>, Option<i64>)> {
    let mut inst = instances::current(c, &req.pair, req.generation)?;
    if !inst.state.can_move_to(req.state) {
        return Err(RpcError::new(
            FaultCode::IllegalTransition,
            format!("{} generation {} cannot move from {} to {}", req.pair, inst.generation, inst.state, req.state),
        )
        .into());
    }
    if req.state == ViewerState::Ready && req.ipaddress.is_none() && inst.address.is_empty() {
        return Err(RpcError::invalid_params("state ready needs ipaddress").into());
    }
    let now = now_ms();
    instances::set_address(c, inst.generation, req.ipaddress.as_deref(), req.domain.as_deref())?;
    let reason = req.message.clone().unwrap_or_else(|| format!("job reported {}", req.state));
    if req.state.is_terminal() {
        return Ok((instances::finish(c, &mut inst, req.state, &reason, ctx, now, ItsJob::Leave)?, None));
    }
    let became_ready = (req.state == ViewerState::Ready && inst.state != ViewerState::Ready).then_some(inst.created_ms);
    if req.state != inst.state {
        instances::transition(c, &mut inst, req.state, &reason, now)?;
    }
    // A report is as good as a heartbeat.
    instances::set_lease(c, inst.generation, now + lease_ms)?;
    // A viewer that came up is no longer starting: room for a launch waiting on the start limit.
    let effects = if became_ready.is_some() { crate::instances::admit(c, ctx, now)? } else { Vec::new() };
    Ok((effects, became_ready))
}
