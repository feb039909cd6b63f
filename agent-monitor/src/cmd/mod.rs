//! One file per XML-RPC method. Each turns checked parameters (decoded by `vrun-proto` at the
//! edge) into a store transaction and, after the commit, effects.

mod abort_viewer;
mod delete_viewer_dbs;
mod fetch_job;
mod fetch_viewer_db;
mod heartbeat;
mod host_info;
mod is_viewer_available;
mod kill_viewer;
mod launch_viewer;
mod list_viewers;
mod node_inventory;
mod node_salvaged;
mod platform;
mod push;
mod rotate_secrets;
mod set_viewer_state;
mod store_viewer;
mod viewer_login;
mod viewer_status;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods as m;
use vrun_proto::RpcError;

use crate::daemon::Daemon;

/// What a method answers: a value for the generic writer, or the `methodResponse` already
/// written (the two answers every View asks for repeatedly write theirs directly).
pub enum Answer {
    Value(Value),
    Xml(String),
}

type Fut = Pin<Box<dyn Future<Output = Result<Answer, RpcError>> + Send>>;
type RunFn = fn(Arc<Daemon>, Vec<Value>) -> Fut;

/// Every method agent-monitor serves, by name. The endpoint hands each its parameters by
/// value; a table of plain functions instead of dxr_server's `Handler` objects spares a
/// copy of the parameters and a boxed future per call, and lets a method answer in XML.
pub struct Methods {
    daemon: Arc<Daemon>,
    table: HashMap<&'static str, RunFn>,
}

/// Every method and how it runs. `system.listMethods` answers from this table too, so a
/// method is added in one place.
const TABLE: [(&str, RunFn); 24] = [
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
    (m::FETCH_JOB, |mo, p| Box::pin(value(fetch_job::run(mo, p)))),
    (m::FETCH_VIEWER_DB, |mo, p| Box::pin(value(fetch_viewer_db::run(mo, p)))),
    (m::HOST_INFO, |mo, p| Box::pin(value(host_info::run(mo, p)))),
    (m::NODE_INVENTORY, |mo, p| Box::pin(value(node_inventory::run(mo, p)))),
    (m::NODE_SALVAGED, |mo, p| Box::pin(value(node_salvaged::run(mo, p)))),
    (m::VIEWER_LOGIN, |mo, p| Box::pin(value(viewer_login::run(mo, p)))),
    (m::KILL_VIEWER, |mo, p| Box::pin(value(kill_viewer::run(mo, p)))),
    (m::DELETE_VIEWER_DBS, |mo, p| Box::pin(value(delete_viewer_dbs::run(mo, p)))),
    (m::ROTATE_SECRETS, |mo, p| Box::pin(value(rotate_secrets::run(mo, p)))),
    (m::ADD_PLATFORM, |mo, p| Box::pin(value(platform::add(mo, p)))),
    (m::LIST_PLATFORMS, |mo, p| Box::pin(value(platform::list(mo, p)))),
    (m::REMOVE_PLATFORM, |mo, p| Box::pin(value(platform::remove(mo, p)))),
    (m::LIST_METHODS, |_, p| Box::pin(std::future::ready(list_methods(p).map(Answer::Value)))),
    (m::SERVER_VERSION, |_, p| Box::pin(value(server_version(p)))),
];

impl Methods {
    pub fn new(daemon: Arc<Daemon>) -> Methods {
        Methods { daemon, table: TABLE.into_iter().collect() }
    }

    /// Method `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<Method<'_>> {
        self.table.get_key_value(name).map(|(&name, &run)| Method { daemon: &self.daemon, name, run })
    }
}

/// One method, ready to be called.
pub struct Method<'a> {
    daemon: &'a Arc<Daemon>,
    name: &'static str,
    run: RunFn,
}

/// The methods answered on the connection's own thread: the two every View asks for
/// repeatedly (from the live map; `launchViewer`'s write, when it makes one, runs whole on
/// the daemon's runtime by [`Daemon::decide`]) and the two that read a constant.
const ON_CONNECTION: [&str; 4] = [m::LAUNCH_VIEWER, m::IS_VIEWER_AVAILABLE, m::LIST_METHODS, m::SERVER_VERSION];

impl Method<'_> {
    /// Its name, from the table (a bounded set, fit for a metrics label).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every other method runs whole, in a task of its own on the daemon's runtime: a client
    /// that closes its connection mid-call drops the handler, and a change committed without
    /// the effects that follow it (a job to start or cancel, a waiting launch to admit) would
    /// wait for a deadline to be repaired; and what it spawns must not live on a connection
    /// thread. The task starts here, before the caller first polls.
    pub fn call(self, params: Vec<Value>) -> impl Future<Output = Result<Answer, RpcError>> {
        let call = (self.run)(Arc::clone(self.daemon), params);
        let run = if ON_CONNECTION.contains(&self.name) { Ok(call) } else { Err(self.daemon.rt.spawn(call)) };
        async move {
            match run {
                Ok(call) => call.await,
                Err(task) => task.await.unwrap_or_else(|e| {
                    Err(RpcError::new(vrun_proto::FaultCode::Internal, format!("the call failed: {e}")))
                }),
            }
        }
    }
}

async fn value(f: impl Future<Output = Result<Value, RpcError>>) -> Result<Answer, RpcError> {
    f.await.map(Answer::Value)
}

fn no_params(p: &[Value]) -> Result<(), RpcError> {
    if p.is_empty() {
        Ok(())
    } else {
        Err(RpcError::invalid_params("this method takes no parameters"))
    }
}

/// Not async: its answer is read from [`TABLE`], whose entries hold the futures of every
/// method, so an `async fn` here would contain its own type.
fn list_methods(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    let mut names: Vec<&str> = TABLE.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    Ok(Value::Array(names.into_iter().map(|n| Value::String(n.into())).collect()))
}

async fn server_version(p: Vec<Value>) -> Result<Value, RpcError> {
    no_params(&p)?;
    Ok(Value::String(format!("agent-monitor {}", env!("CARGO_PKG_VERSION"))))
}
