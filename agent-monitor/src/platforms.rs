//! Platforms (viewer VM images) validated before users get them, as POD validates an
//! activity by installing it on a worker first.
//!
//! `agentMonitor.addPlatform` (CLI: `agent-monitor platform add NAME PATH`) records the image
//! as `validating` and creates a scratch instance (`platform-<name>.CodeDX`) that runs it
//! through the configured launcher, like any View; [`crate::platform_check`] drives that
//! check. The platform is `approved` or `rejected` with the reason; the scratch instance
//! leaves nothing behind but its stored database. This module is the `platforms` table only. Launches use the newest
//! approved platform ([`current`]); with none approved, the configured `--platform`.
//! `removePlatform` retires one: new launches stop using it, running viewers keep theirs.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use vrun_proto::{FaultCode, Pair, RpcError};

use crate::store::{now_ms, Db};

/// The scratch pair's viewer type.
pub const CHECK_VIEWER: &str = "CodeDX";

/// How a check is run (settings; `None` when this daemon cannot run checks).
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub launchviewer: PathBuf,
    pub agent_monitor_url: String,
    pub launcher_secret: PathBuf,
    pub timeout: Duration,
}

/// One platform as `listPlatforms` shows it.
#[derive(Debug, Clone)]
pub struct Platform {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub state: String,
    pub reason: String,
    pub generation: Option<i64>,
    pub added_ms: i64,
    pub updated_ms: i64,
}

/// The scratch pair that checks platform `name`.
pub fn check_pair(name: &str) -> Result<Pair, RpcError> {
    if name.len() > 48 {
        return Err(RpcError::new(FaultCode::InvalidName, "a platform name is at most 48 characters"));
    }
    Ok(Pair::new(&format!("platform-{name}"), CHECK_VIEWER)?)
}

/// The newest approved platform's (path, checksum), if any.
pub fn current(conn: &Connection) -> Db<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT path, sha256 FROM platforms WHERE state = 'approved' ORDER BY updated_ms DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub fn list(conn: &Connection) -> Db<Vec<Platform>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, path, sha256, state, reason, generation, added_ms, updated_ms FROM platforms ORDER BY added_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Platform {
            name: r.get(0)?,
            path: r.get(1)?,
            sha256: r.get(2)?,
            state: r.get(3)?,
            reason: r.get(4)?,
            generation: r.get(5)?,
            added_ms: r.get(6)?,
            updated_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A platform's state, if it was ever added.
pub fn state(conn: &Connection, name: &str) -> Db<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT state FROM platforms WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Records `name` as validating in scratch instance `generation` (a rejected or retired
/// one may be added again).
pub fn record_validating(conn: &Connection, name: &str, path: &str, sha256: &str, generation: i64, now: i64) -> Db<()> {
    conn.prepare_cached(
        "INSERT INTO platforms (name, path, sha256, state, reason, generation, added_ms, updated_ms)
         VALUES (?1, ?2, ?3, 'validating', 'booting it once in a scratch VM', ?4, ?5, ?5)
         ON CONFLICT (name) DO UPDATE SET path = ?2, sha256 = ?3, state = 'validating',
             reason = 'booting it once in a scratch VM', generation = ?4, updated_ms = ?5",
    )?
    .execute(params![name, path, sha256, generation, now])?;
    Ok(())
}

/// Ends a check's verdict (only while it is still validating: a removal wins).
pub fn verdict(conn: &Connection, name: &str, approved: bool, reason: &str) -> Db<()> {
    conn.prepare_cached(
        "UPDATE platforms SET state = ?2, reason = ?3, updated_ms = ?4 WHERE name = ?1 AND state = 'validating'",
    )?
    .execute(params![name, if approved { "approved" } else { "rejected" }, reason, now_ms()])?;
    Ok(())
}

/// Retires `name`; returns whether it existed.
pub fn remove(conn: &Connection, name: &str) -> Db<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE platforms SET state = 'retired', reason = 'removed by an admin', updated_ms = ?2 WHERE name = ?1",
        )?
        .execute(params![name, now_ms()])?;
    Ok(n > 0)
}
