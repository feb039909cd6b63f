//! `agentMonitor.killViewer` (admin): ends a pair's live instance now, with no residue.
//!
//! Unlike `abortViewer`, which asks the job to stop and waits for it, this takes the lock
//! away at once (`stopped`, "killed by an admin"; a launch queued behind it is dropped), then
//! cancels the job (SIGTERM, SIGKILL after the grace; `scancel` under Slurm) and salvages the
//! VM it leaves behind: power button, the guest's database stored if it saves one in time,
//! domain destroyed and undefined, work directory removed. The pair's stored databases are
//! kept (`deleteViewerDbs` removes them). Answers once all of that is done, so an operator
//! who sees the answer sees no residue.

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
    let pair = req.pair.clone();
    let killed = m
        .store
        .write(move |c| match instances::live(c, &pair)? {
            Some(mut inst) => {
                instances::clear_relaunch(c, &mut inst)?;
                // `Leave`: the job is cancelled below, and this call waits for it. The effects
                // are the starts of launches that were waiting for the room this frees.
                let effects = instances::finish(
                    c,
                    &mut inst,
                    ViewerState::Stopped,
                    "killed by an admin",
                    &ctx,
                    now_ms(),
                    ItsJob::Leave,
                )?;
                Ok(Some((inst.generation, effects)))
            }
            None if instances::latest(c, &pair)?.is_some() => Ok(None),
            None => Err(RpcError::new(FaultCode::UnknownInstance, format!("no viewer {pair}")).into()),
        })
        .await?;
    let Some((generation, admitted)) = killed else {
        return Ok(Value::Integer(0));
    };
    m.apply(admitted);
    tracing::info!(pair = %req.pair, generation, "killed by an admin");
    let (launcher, grace) = (Arc::clone(&m.launcher), m.timing.cancel_grace);
    tokio::task::spawn_blocking(move || launcher.cancel(generation, grace))
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, format!("cannot cancel the job: {e}")))?;
    m.salvage.generation(generation).await;
    Ok(Value::Integer(1))
}
