//! `agentMonitor.fetchJob`: a job's description, for a job on a node that cannot read
//! agent-monitor's state directory (the Slurm launcher; the process launcher in `fetch`
//! delivery). The job authenticates with its token, which names its pair and generation, so
//! it can only ever fetch its own description.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{fetch_job_reply, GenerationRef};
use vrun_proto::{FaultCode, RpcError};

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = GenerationRef::from_params(&params)?;
    let (pair, generation) = (req.pair.clone(), req.generation);
    let inst = m.store.read(move |c| instances::current(c, &pair, generation)).await?;
    if inst.state.is_terminal() {
        // Its VM must not start: the pair is free (or held by a newer generation soon).
        return Err(RpcError::new(
            FaultCode::IllegalTransition,
            format!("generation {generation} of {} already ended ({})", req.pair, inst.state.as_str()),
        ));
    }
    let mut spec = instances::job_spec(&inst, &m.job_ctx);
    if let Some(path) = spec.db_path.clone() {
        // The node verifies what it fetches against these; a file that cannot be read here
        // leaves them out and the job fails with "cannot fetch the database to restore".
        let summed = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)?;
            Ok::<_, std::io::Error>((crate::archives::sha256_hex(&bytes), bytes.len() as u64))
        })
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))?;
        match summed {
            Ok((sum, size)) => (spec.db_sha256, spec.db_size) = (Some(sum), Some(size)),
            Err(e) => tracing::warn!(generation, error = %e, "cannot read the database to restore"),
        }
    }
    let json = serde_json::to_string(&spec).map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))?;
    Ok(fetch_job_reply(spec.version, json))
}
