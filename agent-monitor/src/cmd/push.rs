//! `agentMonitor.claimPush` / `agentMonitor.pushDone`: results are uploaded to a viewer
//! once per generation, however many Views arrive at once. The first caller claims the
//! upload; the others wait for it; a claim whose holder vanished expires and can be retaken.

use std::sync::Arc;

use dxr::Value;
use rusqlite::{params, OptionalExtension};
use vrun_proto::methods::{ClaimPush, PushDone, PushStatus};
use vrun_proto::RpcError;

use crate::daemon::Daemon;
use crate::instances;
use crate::store::now_ms;

pub async fn claim(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = ClaimPush::from_params(&params)?;
    let timeout_ms = m.timing.push_timeout.as_millis() as i64;
    let status = m
        .store
        .write(move |c| {
            instances::current(c, &req.pair, req.generation)?;
            let now = now_ms();
            let existing: Option<(String, i64)> = c
                .prepare_cached("SELECT state, claimed_ms FROM pushes WHERE generation = ?1 AND checksum = ?2")?
                .query_row(params![req.generation, req.checksum], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match existing {
                Some((s, _)) if s == "done" => return Ok(PushStatus::Done),
                Some((_, claimed)) if now - claimed < timeout_ms => return Ok(PushStatus::Pushing),
                _ => {}
            }
            c.prepare_cached(
                "INSERT INTO pushes (generation, checksum, package, state, claimed_ms) VALUES (?1, ?2, ?3, 'pushing', ?4)
                 ON CONFLICT (generation, checksum) DO UPDATE SET state = 'pushing', claimed_ms = excluded.claimed_ms",
            )?
            .execute(params![req.generation, req.checksum, req.package.clone().unwrap_or_default(), now])?;
            Ok(PushStatus::Claimed)
        })
        .await?;
    Ok(status.to_value())
}

pub async fn done(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = PushDone::from_params(&params)?;
    m.store
        .write(move |c| {
            instances::current(c, &req.pair, req.generation)?;
            if req.ok {
                c.prepare_cached(
                    "UPDATE pushes SET state = 'done', done_ms = ?3 WHERE generation = ?1 AND checksum = ?2",
                )?
                .execute(params![req.generation, req.checksum, now_ms()])?;
            } else {
                c.prepare_cached("DELETE FROM pushes WHERE generation = ?1 AND checksum = ?2 AND state = 'pushing'")?
                    .execute(params![req.generation, req.checksum])?;
            }
            Ok(())
        })
        .await?;
    Ok(Value::Integer(1))
}
