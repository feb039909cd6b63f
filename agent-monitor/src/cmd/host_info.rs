//! `agentMonitor.hostInfo` (admin): this daemon's id and the hypervisor's vrun domains that
//! belong to other agent-monitors, which it lists and never touches; and the hypervisor
//! nodes whose DomainMonitors report to it.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{DomainEntry, HostInfo};
use vrun_proto::RpcError;

use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    super::no_params(&params)?;
    let domains = crate::hypervisor::inventory_within(&m.hypervisor).await.ok();
    let me = m.job_ctx.monitor_id.as_str();
    let info = HostInfo {
        monitor_id: me.to_string(),
        hypervisor_reachable: domains.is_some(),
        own_domains: domains.iter().flatten().filter(|d| d.owned_by(me)).count() as i64,
        foreign_domains: domains
            .iter()
            .flatten()
            .filter(|d| !d.owned_by(me))
            .map(|d| DomainEntry {
                name: d.name.clone(),
                owner: d.owner.clone().unwrap_or_default(),
                project: d.pair.project().into(),
                viewer: d.pair.viewer().into(),
                generation: d.generation,
                running: d.running,
            })
            .collect(),
        nodes: m.nodes.summary(me).into_iter().map(|(n, d)| (n, d as i64)).collect(),
    };
    Ok(info.to_value())
}
