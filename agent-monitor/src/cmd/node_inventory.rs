//! `agentMonitor.nodeInventory` (role `node`): a DomainMonitor's report of its node's vrun
//! domains. Kept in memory for the status ([`crate::nodes`]); answered with this daemon's
//! id and which of the reported generations are still live, so the DomainMonitor can tell
//! a domain whose instance ended from one still in use.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::node::{InventoryReply, NodeInventory};
use vrun_proto::RpcError;

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = NodeInventory::from_params(&params)?;
    let me = m.job_ctx.monitor_id.clone();
    let ours: Vec<(i64, vrun_proto::Pair)> =
        req.domains.iter().filter(|d| d.owner == me).map(|d| (d.generation, d.pair.clone())).collect();
    let found = m
        .store
        .read(move |c| {
            let mut out = Vec::new();
            for (g, pair) in ours {
                if let Some(i) = instances::by_generation(c, g)?.filter(|i| i.pair == pair && !i.state.is_terminal()) {
                    out.push(i);
                }
            }
            Ok(out)
        })
        .await?;
    // A domain seen on a node says where its instance runs when the launcher did not say
    // (the launcher's word, Slurm's node name, is the same name and is kept).
    for inst in found.iter().filter(|i| i.node.is_none()) {
        let (g, node) = (inst.generation, req.node.clone());
        let _ = m.store.write(move |c| instances::set_node(c, g, &node)).await;
    }
    tracing::debug!(node = %req.node, domains = req.domains.len(), live = found.len(), "node inventory");
    m.nodes.record(&req.node, req.domains);
    Ok(InventoryReply { monitor_id: me, live: found.iter().map(|i| i.generation).collect() }.to_value())
}
