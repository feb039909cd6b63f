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
    // The pair's newest row says both who holds the lock (the live one is always the newest:
    // a generation is created only when none is live, and the unique index on live rows
    // refuses a second) and, when none does, the front door id the next one keeps.
    match instances::latest(c, &req.pair)? {
        Some(inst) if inst.state == ViewerState::Stopping => {
            // SWAMP dropped this click. Record it; the stop's completion launches again.
            instances::set_relaunch(c, inst.generation, req.user.as_deref())?;
            let reply = LaunchReply { state: inst.state, generation: inst.generation, launched: false, queued: true };
            Ok((reply, Vec::new()))
        }
        Some(inst) if !inst.state.is_terminal() => Ok((held(inst.state, inst.generation), Vec::new())),
        prev => {
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
            let (inst, start) = instances::create_after(c, prev.as_ref(), &req.pair, &p, ctx, now_ms(), &reason)?;
            let reply = LaunchReply { state: inst.state, generation: inst.generation, launched: true, queued: false };
            Ok((reply, start.into_iter().collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A launch runs a dozen statements on the one writer thread, from its statement cache:
    /// none may be parsed again at each use (one was: 17 % of the writer's time in the
    /// durable-launch bench, docs/performance.md). On the way: the platform each launch gets.
    #[tokio::test]
    async fn no_statement_of_a_launch_is_prepared_again_at_each_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite3")).unwrap();
        let capacity = crate::capacity::Capacity { max_viewers: Some(1000), ..Default::default() };
        let ctx = JobContext {
            monitor_id: "m".into(),
            platform: "/nonexistent/platform".into(),
            platform_sha256: None,
            memory_mib: 512,
            vcpus: 1,
            agent_monitor_url: "http://127.0.0.1:1/RPC2".into(),
            heartbeat_secs: 30,
            start_grace_ms: 60_000,
            secrets: Arc::new(crate::auth::Secrets::load_or_create(dir.path()).unwrap()),
            capacity: Arc::new(crate::shared::Shared::new(capacity)),
        };
        // Before any platform is approved, a launch gets none (the configured one).
        let first = LaunchViewer {
            pair: vrun_proto::Pair::new("first", "CodeDX").unwrap(),
            viewer_uuid: None,
            resultsfolder: None,
            db_path: None,
            user: None,
        };
        let ctx2 = ctx.clone();
        let (reply, _) = store.write(move |c| decide(c, &first, &ctx2)).await.unwrap();
        let platform_of = |generation: i64| {
            let store = store.clone();
            async move { store.read(move |c| Ok(instances::by_generation(c, generation)?.unwrap().platform)).await.unwrap() }
        };
        assert_eq!(platform_of(reply.generation).await, None);
        store
            .write(|c| {
                // Paths every launch can take: an approved platform and stored archives.
                crate::platforms::record_validating(c, "p1", "/nonexistent/p1", "00", 0, 1)?;
                crate::platforms::verdict(c, "p1", true, "")?;
                for p in 0..4 {
                    c.execute(
                        "INSERT INTO archives (project, viewer, generation, checksum, size, path, stored_ms)
                         VALUES (?1, 'CodeDX', 1, '', 0, '/nonexistent/a', 0)",
                        [format!("proj{p}")],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        for p in 0..8 {
            let req = LaunchViewer {
                pair: vrun_proto::Pair::new(&format!("proj{p}"), "CodeDX").unwrap(),
                viewer_uuid: None,
                resultsfolder: None,
                db_path: None,
                user: Some("alice".into()),
            };
            let ctx = ctx.clone();
            let (reply, _) = store.write(move |c| decide(c, &req, &ctx)).await.unwrap();
            assert!(reply.launched);
            assert_eq!(platform_of(reply.generation).await, Some(("/nonexistent/p1".into(), "00".into())));
        }
        // A platform check's scratch instance runs the platform it checks.
        let ctx2 = ctx.clone();
        let (checked, _) = store
            .write(move |c| {
                let p = LaunchParams {
                    viewer_uuid: None,
                    resultsfolder: None,
                    db_path: None,
                    user: None,
                    platform: Some(("/nonexistent/p2".into(), "11".into())),
                };
                let pair = vrun_proto::Pair::new("check", "CodeDX").unwrap();
                instances::create(c, &pair, &p, &ctx2, 1, "checking")
            })
            .await
            .unwrap();
        assert_eq!(platform_of(checked.generation).await, Some(("/nonexistent/p2".into(), "11".into())));
        let reprepared = store.write(|c| Ok(crate::store::reprepared(c))).await.unwrap();
        assert!(reprepared.is_empty(), "prepared again at each use: {reprepared:#?}");
    }
}
