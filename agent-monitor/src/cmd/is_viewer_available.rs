//! `agentMonitor.isViewerAvailable(viewer, project)`: SWAMP's readiness question.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{Availability, IsViewerAvailable};
use vrun_proto::{RpcError, ViewerState};

use crate::instances;
use crate::monitor::Monitor;

pub async fn run(m: Arc<Monitor>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = IsViewerAvailable::from_params(&params)?;
    let live = m.store.read_point(|c| instances::live(c, &req.pair))?;
    let reply = match live {
        None => Availability::default(),
        Some(i) => Availability {
            // Only `ready` with an address is usable; the key and path are handed out only then.
            ready: i.state == ViewerState::Ready && !i.address.is_empty(),
            address: i.address.clone(),
            apikey: if i.state == ViewerState::Ready { i.apikey.clone() } else { String::new() },
            urluuid: if i.state == ViewerState::Ready { i.urluuid.clone() } else { String::new() },
            state: i.state.as_str().into(),
            generation: i.generation,
        },
    };
    Ok(reply.to_value())
}
