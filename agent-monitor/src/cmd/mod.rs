//! One file per XML-RPC method. Each turns checked parameters (decoded by `vrun-proto` at the
//! edge) into a store transaction and, after the commit, effects.

mod abort_viewer;
mod heartbeat;
mod is_viewer_available;
mod launch_viewer;
mod list_viewers;
mod push;
mod set_viewer_state;
mod store_viewer;
mod viewer_status;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dxr::Value;
use dxr_server::{async_trait, Handler, HandlerResult};
use http::HeaderMap;
use vrun_proto::methods as m;
use vrun_proto::RpcError;

use crate::monitor::Monitor;

type Fut = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;
type RunFn = fn(Arc<Monitor>, Vec<Value>) -> Fut;

struct Method {
    monitor: Arc<Monitor>,
    run: RunFn,
}

#[async_trait]
impl Handler for Method {
    async fn handle(&self, params: &[Value], _headers: HeaderMap) -> HandlerResult {
        (self.run)(Arc::clone(&self.monitor), params.to_vec()).await.map_err(Into::into)
    }
}

/// Every method agent-monitor serves.
pub fn handlers(monitor: Arc<Monitor>) -> HashMap<&'static str, Box<dyn Handler>> {
    let table: [(&'static str, RunFn); 12] = [
        (m::LAUNCH_VIEWER, |mo, p| Box::pin(launch_viewer::run(mo, p))),
        (m::IS_VIEWER_AVAILABLE, |mo, p| Box::pin(is_viewer_available::run(mo, p))),
        (m::SET_VIEWER_STATE, |mo, p| Box::pin(set_viewer_state::run(mo, p))),
        (m::HEARTBEAT, |mo, p| Box::pin(heartbeat::run(mo, p))),
        (m::ABORT_VIEWER, |mo, p| Box::pin(abort_viewer::run(mo, p))),
        (m::STORE_VIEWER, |mo, p| Box::pin(store_viewer::run(mo, p))),
        (m::VIEWER_STATUS, |mo, p| Box::pin(viewer_status::run(mo, p))),
        (m::LIST_VIEWERS, |mo, p| Box::pin(list_viewers::run(mo, p))),
        (m::CLAIM_PUSH, |mo, p| Box::pin(push::claim(mo, p))),
        (m::PUSH_DONE, |mo, p| Box::pin(push::done(mo, p))),
        (m::LIST_METHODS, |_, p| Box::pin(list_methods(p))),
        (m::SERVER_VERSION, |_, p| Box::pin(server_version(p))),
    ];
    table
        .into_iter()
        .map(|(name, run)| (name, Box::new(Method { monitor: Arc::clone(&monitor), run }) as Box<dyn Handler>))
        .collect()
}

fn no_params(p: &[Value]) -> Result<(), RpcError> {
    if p.is_empty() { Ok(()) } else { Err(RpcError::invalid_params("this method takes no parameters")) }
}

async fn list_methods(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    let mut names = vec![
        m::LAUNCH_VIEWER, m::IS_VIEWER_AVAILABLE, m::SET_VIEWER_STATE, m::HEARTBEAT, m::ABORT_VIEWER,
        m::STORE_VIEWER, m::VIEWER_STATUS, m::LIST_VIEWERS, m::CLAIM_PUSH, m::PUSH_DONE, m::LIST_METHODS,
        m::SERVER_VERSION,
    ];
    names.sort_unstable();
    Ok(Value::Array(names.into_iter().map(|n| Value::String(n.into())).collect()))
}

async fn server_version(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    Ok(Value::String(format!("agent-monitor {}", env!("CARGO_PKG_VERSION"))))
}
