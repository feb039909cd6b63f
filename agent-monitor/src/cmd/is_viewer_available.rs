//! `agentMonitor.isViewerAvailable(viewer, project)`: SWAMP's readiness question.

use std::sync::Arc;

use dxr::Value;
use vrun_proto::methods::{Availability, AvailabilityRef, IsViewerAvailable};
use vrun_proto::{RpcError, ViewerState};

use super::Answer;
use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Answer, RpcError> {
    let req = IsViewerAvailable::from_params(&params)?;
    // From the writer-maintained map: no SQLite on the path every View polls.
    let Some(i) = m.store.live(&req.pair)? else {
        return Ok(Answer::Xml(Availability::default().to_answer_xml()));
    };
    let mut waiting = i64::from(i.waiting);
    if waiting != 0 {
        // Rare (only under a capacity limit), so the place in line is worth a read.
        let g = i.generation;
        waiting = m.store.read(move |c| crate::capacity::place_in_line(c, g)).await?;
    }
    // Written straight from the map's entry, without copying its strings out first.
    Ok(Answer::Xml(
        AvailabilityRef {
            // Only `ready` with an address is usable; the key and path are handed out only
            // then (the map holds them only then).
            ready: i.state == ViewerState::Ready && !i.address().is_empty(),
            address: i.address(),
            apikey: i.apikey(),
            urluuid: i.urluuid(),
            state: i.state.as_str(),
            generation: i.generation,
            waiting,
        }
        .to_answer_xml(),
    ))
}
