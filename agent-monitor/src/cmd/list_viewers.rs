//! `agentMonitor.listViewers`: the newest instance of every pair (no history).

use std::sync::Arc;

use dxr::Value;
use vrun_proto::RpcError;

use crate::instances;
use crate::monitor::Monitor;

pub async fn run(m: Arc<Monitor>, params: Vec<Value>) -> Result<Value, RpcError> {
    if !params.is_empty() {
        return Err(RpcError::invalid_params("listViewers takes no parameters"));
    }
    let all = m.store.read(instances::latest_per_pair).await?;
    Ok(Value::Array(all.iter().map(|i| i.record().to_value()).collect()))
}
