//! `agentMonitor.launchViewer`: take the pair's lock or return whoever holds it.

use std::sync::Arc;

use dxr::Value;
use rusqlite::Connection;
use vrun_proto::methods::{LaunchReply, LaunchViewer};
use vrun_proto::{RpcError, ViewerState};

use super::Answer;
use crate::daemon::Daemon;
use crate::instances::{self, Effect, JobContext, LaunchParams};
use crate::store::{now_ms, Db};

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Answer, RpcError> {
    let req = LaunchViewer::from_params(&params)?;
    // Most calls find the viewer already held: answer those from the writer-maintained map
    // of committed live instances, without queueing behind writes. A committed live instance
    // is the truth, so this is safe; anything else is decided inside a transaction.
    if let Some(inst) = m.store.live(&req.pair)? {
        if inst.state != ViewerState::Stopping {
            return Ok(Answer::Xml(held(inst.state, inst.generation).to_answer_xml()));
        }
    }
    let ctx = m.job_ctx.clone();
    let reply = m.decide(move |c| decide(c, &req, &ctx)).await?;
    Ok(Answer::Xml(reply.to_answer_xml()))
}

fn held(state: ViewerState, generation: i64) -> LaunchReply {
    LaunchReply { state, generation, launched: false, queued: false }
}

fn decide(c: &Connection, req: &LaunchViewer, ctx: &JobContext) -> Db<(LaunchReply, Vec<Effect>)> {
    match instances::live(c, &req.pair)? {
        Some(inst) if inst.state == ViewerState::Stopping => {
            // SWAMP dropped this click. Record it; the stop's completion launches again.
            instances::set_relaunch(c, inst.generation, req.user.as_deref())?;
            let reply = LaunchReply { state: inst.state, generation: inst.generation, launched: false, queued: true };
            Ok((reply, Vec::new()))
        }
        Some(inst) => Ok((held(inst.state, inst.generation), Vec::new())),
        None => {
            let p = LaunchParams {
                viewer_uuid: req.viewer_uuid.clone(),
                resultsfolder: req.resultsfolder.clone(),
                db_path: req.db_path.clone(),
                user: req.user.clone(),
                platform: None,
            };
            let reason = match &req.user {
                Some(u) => format!("launch requested by {u}"),
                None => "launch requested".to_string(),
            };
            let (inst, start) = instances::create(c, &req.pair, &p, ctx, now_ms(), &reason)?;
            let reply = LaunchReply { state: inst.state, generation: inst.generation, launched: true, queued: false };
            Ok((reply, start.into_iter().collect()))
        }
    }
}
