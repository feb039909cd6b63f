//! `agentMonitor.nodeSalvaged` (role `node`): a node's DomainMonitor found a domain whose
//! job is gone (killed, or its node's job system lost it), powered it off and hands over
//! what the guest saved. The database is kept first (when its generation is still the
//! pair's newest), then the instance, if still live, ends `failed` with the node's reason,
//! which frees the pair. A storage failure is a fault: the DomainMonitor then keeps the
//! domain and its disk and tries again.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::node::{NodeSalvaged, SalvagedReply};
use vrun_proto::{FaultCode, RpcError};

use crate::archives;
use crate::daemon::Daemon;
use crate::instances::{self, ItsJob};
use crate::store::now_ms;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = NodeSalvaged::from_params(&params)?;
    let me = m.job_ctx.monitor_id.clone();
    if req.domain != req.pair.domain_name(&me, req.generation) {
        return Err(RpcError::new(
            FaultCode::NotAuthorised,
            format!(
                "not authorised: {} is not this agent-monitor's domain of {} generation {}",
                req.domain, req.pair, req.generation
            ),
        ));
    }
    let g = req.generation;
    let inst = m.store.read(move |c| instances::by_generation(c, g)).await?;
    let inst = match inst {
        Some(i) if i.pair == req.pair => i,
        _ => {
            return Err(RpcError::new(
                FaultCode::UnknownInstance,
                format!("no instance of {} generation {g}", req.pair),
            ))
        }
    };
    if let Some(node) = inst.node.as_deref().filter(|n| *n != req.node) {
        return Err(RpcError::new(
            FaultCode::NotAuthorised,
            format!("not authorised: {} generation {g} runs on node {node}, not {}", req.pair, req.node),
        ));
    }
    if !m.nodes.listed(&req.node, g, &me) {
        return Err(RpcError::new(
            FaultCode::NotAuthorised,
            format!(
                "not authorised: node {} has not reported {} (report it with nodeInventory first)",
                req.node, req.domain
            ),
        ));
    }
    let (kept, note) = match req.saved {
        None => (false, "its guest saved no database".to_string()),
        Some((db, sum)) => {
            let actual = archives::sha256_hex(&db);
            if actual != sum {
                return Err(RpcError::new(
                    FaultCode::BadChecksum,
                    format!("archive checksum is {actual}, the request says {sum}"),
                ));
            }
            let size = db.len();
            match archives::keep(&m.store, &m.archives, &req.pair, g, &sum, db).await {
                Ok(()) => (true, format!("its database ({size} bytes, sha256 {sum}) was salvaged")),
                Err(e) if matches!(e.code, FaultCode::StaleGeneration | FaultCode::UnknownInstance) => {
                    (false, "its database is older than the pair's newest run and was not kept".to_string())
                }
                Err(e) => return Err(e),
            }
        }
    };
    let why = format!("node {}'s DomainMonitor salvaged its VM: {}; {note}", req.node, req.reason);
    tracing::warn!(pair = %req.pair, generation = g, node = %req.node, reason = %why, "node salvaged a domain");
    if inst.state.is_terminal() {
        let _ = m
            .store
            .write(move |c| {
                if let Some(i) = instances::by_generation(c, g)? {
                    instances::note(c, &i, &why, now_ms())?;
                }
                Ok(())
            })
            .await;
    } else {
        // The job is gone already (that is why the node salvaged): nothing to cancel, and
        // the domain is the node's to remove.
        m.fail_generation(g, why, ItsJob::Leave).await;
    }
    Ok(SalvagedReply { kept, note }.to_value())
}
