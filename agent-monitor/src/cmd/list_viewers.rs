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
    // The hypervisor's word on each instance's domain: yes, no, or unknown (unreachable).
    let domains = crate::hypervisor::inventory_within(&m.hypervisor).await.ok();
    let me = m.job_ctx.monitor_id.as_str();
    Ok(Value::Array(
        all.iter()
            .zip(places)
            .map(|(i, place)| {
                let mut rec = i.record();
                rec.waiting = place;
                rec.domain_exists = match &domains {
                    None => "unknown".into(),
                    // Another agent-monitor's domain of the same generation number is not ours.
                    Some(ds) if ds.iter().any(|d| d.generation == i.generation && d.owned_by(me)) => "yes".into(),
                    Some(_) => "no".into(),
                };
                rec.to_value()
            })
            .collect(),
    ))
}
