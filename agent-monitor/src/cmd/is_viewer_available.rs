//! `agentMonitor.isViewerAvailable(viewer, project)`: SWAMP's readiness question.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{Availability, IsViewerAvailable};
use vrun_proto::{RpcError, ViewerState};

use super::Answer;
use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Answer, RpcError> {
    let req = IsViewerAvailable::from_params(&params)?;
    // From the writer-maintained map: no SQLite on the path every View polls.
    let mut reply = match m.store.live(&req.pair)? {
        None => Availability::default(),
        Some(i) => Availability {
            // Only `ready` with an address is usable; the key and path are handed out only
            // then (the map holds them only then).
            ready: i.state == ViewerState::Ready && !i.address.is_empty(),
            address: i.address.clone(),
            apikey: i.apikey.clone(),
            urluuid: i.urluuid.clone(),
            state: i.state.as_str().into(),
            generation: i.generation,
            waiting: i64::from(i.waiting),
        },
    };
    if reply.waiting != 0 {
        // Rare (only under a capacity limit), so the place in line is worth a read.
        let g = reply.generation;
        reply.waiting = m.store.read(move |c| crate::capacity::place_in_line(c, g)).await?;
    }
    Ok(Answer::Xml(reply.to_answer_xml()))
}
