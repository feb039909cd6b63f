//! `agentMonitor.listViewers`: the newest instance of every pair (no history).

use std::sync::Arc;

use dxr::Value;
use vrun_proto::RpcError;

use crate::daemon::Daemon;
use crate::instances;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    if !params.is_empty() {
        return Err(RpcError::invalid_params("listViewers takes no parameters"));
    }
    let all = m
        .store
        .read(|c| {
            let all = instances::latest_per_pair(c)?;
            let places = all
                .iter()
                .map(|i| if i.waiting { crate::capacity::place_in_line(c, i.generation) } else { Ok(0) })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((all, places))
        })
        .await?;
    let (all, places) = all;
    // The hypervisor's word on each instance's domain: yes, no, or unknown (unreachable):
    // its node's DomainMonitor's last report, else this host's own libvirt.
    let domains = crate::hypervisor::inventory_within(&m.hypervisor).await.ok();
    let me = m.job_ctx.monitor_id.as_str();
    let from_node =
        |i: &instances::Instance| i.node.as_deref().and_then(|n| m.nodes.domain_exists(n, i.generation, me));
    Ok(Value::Array(
        all.iter()
            .zip(places)
            .map(|(i, place)| {
                let mut rec = i.record();
                rec.waiting = place;
                rec.domain_exists = match (from_node(i), &domains) {
                    (Some(true), _) => "yes".into(),
                    (Some(false), _) => "no".into(),
                    (None, None) => "unknown".into(),
                    // Another agent-monitor's domain of the same generation number is not ours.
                    (None, Some(ds)) if ds.iter().any(|d| d.generation == i.generation && d.owned_by(me)) => {
                        "yes".into()
                    }
                    (None, Some(_)) => "no".into(),
                };
                rec.to_value()
            })
            .collect(),
    ))
}
