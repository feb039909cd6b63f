//! One file per XML-RPC method. Each turns checked parameters (decoded by `vrun-proto` at the
//! edge) into a store transaction and, after the commit, effects.

mod abort_viewer;
mod heartbeat;
mod host_info;
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
use vrun_proto::methods as m;
use vrun_proto::RpcError;

use crate::monitor::Monitor;

/// What a method answers: a value for the generic writer, or the `methodResponse` already
/// written (the two answers every View asks for repeatedly write theirs directly).
pub enum Answer {
    Value(Value),
    Xml(String),
}

type Fut = Pin<Box<dyn Future<Output = Result<Answer, RpcError>> + Send>>;
type RunFn = fn(Arc<Monitor>, Vec<Value>) -> Fut;

/// Every method agent-monitor serves, by name. The endpoint hands each its parameters by
/// value; a table of plain functions instead of dxr_server's `Handler` objects spares a
/// copy of the parameters and a boxed future per call, and lets a method answer in XML.
pub struct Methods {
    monitor: Arc<Monitor>,
    table: HashMap<&'static str, RunFn>,
}

impl Methods {
    pub fn new(monitor: Arc<Monitor>) -> Methods {
        let table: [(&'static str, RunFn); 13] = [
            (m::LAUNCH_VIEWER, |mo, p| Box::pin(launch_viewer::run(mo, p))),
            (m::IS_VIEWER_AVAILABLE, |mo, p| Box::pin(is_viewer_available::run(mo, p))),
            (m::SET_VIEWER_STATE, |mo, p| Box::pin(value(set_viewer_state::run(mo, p)))),
            (m::HEARTBEAT, |mo, p| Box::pin(value(heartbeat::run(mo, p)))),
            (m::ABORT_VIEWER, |mo, p| Box::pin(value(abort_viewer::run(mo, p)))),
            (m::STORE_VIEWER, |mo, p| Box::pin(value(store_viewer::run(mo, p)))),
            (m::VIEWER_STATUS, |mo, p| Box::pin(value(viewer_status::run(mo, p)))),
            (m::LIST_VIEWERS, |mo, p| Box::pin(value(list_viewers::run(mo, p)))),
            (m::CLAIM_PUSH, |mo, p| Box::pin(value(push::claim(mo, p)))),
            (m::PUSH_DONE, |mo, p| Box::pin(value(push::done(mo, p)))),
            (m::HOST_INFO, |mo, p| Box::pin(value(host_info::run(mo, p)))),
            (m::LIST_METHODS, |_, p| Box::pin(value(list_methods(p)))),
            (m::SERVER_VERSION, |_, p| Box::pin(value(server_version(p)))),
        ];
        Methods { monitor, table: table.into_iter().collect() }
    }

    /// Method `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<Method<'_>> {
        self.table.get(name).map(|&run| Method { monitor: &self.monitor, run })
    }
}

/// One method, ready to be called.
pub struct Method<'a> {
    monitor: &'a Arc<Monitor>,
    run: RunFn,
}

impl Method<'_> {
    pub fn call(self, params: Vec<Value>) -> impl Future<Output = Result<Answer, RpcError>> {
        (self.run)(Arc::clone(self.monitor), params)
    }
}

async fn value(f: impl Future<Output = Result<Value, RpcError>>) -> Result<Answer, RpcError> {
    f.await.map(Answer::Value)
}

fn no_params(p: &[Value]) -> Result<(), RpcError> {
    if p.is_empty() { Ok(()) } else { Err(RpcError::invalid_params("this method takes no parameters")) }
}

async fn list_methods(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    let mut names = vec![
        m::LAUNCH_VIEWER, m::IS_VIEWER_AVAILABLE, m::SET_VIEWER_STATE, m::HEARTBEAT, m::ABORT_VIEWER,
        m::STORE_VIEWER, m::VIEWER_STATUS, m::LIST_VIEWERS, m::CLAIM_PUSH, m::PUSH_DONE, m::HOST_INFO, m::LIST_METHODS,
        m::SERVER_VERSION,
    ];
    names.sort_unstable();
    Ok(Value::Array(names.into_iter().map(|n| Value::String(n.into())).collect()))
}

async fn server_version(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    Ok(Value::String(format!("agent-monitor {}", env!("CARGO_PKG_VERSION"))))
}
