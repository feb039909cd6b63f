//! Viewer instances in SQL: the rows behind the `project.viewer` locks.
//!
//! These functions run inside a store transaction and never touch anything but the
//! database; side effects (starting or cancelling jobs) are returned as [`Effect`]s and
//! carried out by the caller after the commit.

use rusqlite::{params, Connection, OptionalExtension, Row};
use vrun_proto::job::{JobSpec, INTENT_VRUN};
use vrun_proto::methods::{InstanceRecord, Transition};
use vrun_proto::{Pair, RpcError, ViewerState};

use crate::private::random_hex;
use crate::store::{pair_and_state, Db, LIVE};

/// Something to do once the transaction that decided it has committed.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Start the job of a freshly created instance (its description is built from the row
    /// when the start comes up: see `Daemon::apply`).
    StartJob(i64),
    /// Stop the job (and its VM) of a generation that lost its lock.
    CancelJob(i64),
}

/// What a job description is built from besides its instance row: the daemon's id and job
/// settings, the URL the job reports to, and the secrets that mint its token.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// This daemon's id (see `statedir::monitor_id`), written into every job.
    pub monitor_id: String,
    pub platform: String,
    /// `vrun_proto::platform::checksum` of `platform`, computed once at start: nodes verify
    /// their own copy of the image against it.
    pub platform_sha256: Option<String>,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub agent_monitor_url: String,
    pub heartbeat_secs: u64,
    /// Time a new job gets to send its first heartbeat.
    pub start_grace_ms: i64,
    /// Mints each job's token.
    pub secrets: std::sync::Arc<crate::auth::Secrets>,
    /// Limits that make a launch wait for room before its job starts.
    pub capacity: std::sync::Arc<crate::shared::Shared<crate::capacity::Capacity>>,
}

/// What [`finish`] does about the job of the instance it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItsJob {
    /// The daemon takes the lock away (lease, deadline, dead job): stop the job, if any, and
    /// salvage the VM it leaves behind.
    Cancel,
    /// The job ended the instance itself, or there is no job to stop.
    Leave,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub generation: i64,
    pub pair: Pair,
    pub state: ViewerState,
    pub reason: String,
    pub viewer_uuid: Option<String>,
    pub resultsfolder: Option<String>,
    pub db_path: Option<String>,
    pub user: Option<String>,
    pub apikey: String,
    pub urluuid: String,
    pub address: String,
    pub domain: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub lease_until_ms: i64,
    pub job_started_ms: Option<i64>,
    pub relaunch_pending: bool,
    pub relaunch_user: Option<String>,
    /// The job system's id of the job (Slurm's), if it has one.
    pub job_id: Option<String>,
    /// Where the job runs, as the job system last said.
    pub node: Option<String>,
    /// Waiting for room under a capacity limit; its job has not been started
    /// ([`crate::capacity`]).
    pub waiting: bool,
    /// The platform (image path and checksum) it runs; `None`: the configured one.
    pub platform: Option<(String, String)>,
}

const COLUMNS: &str = "generation, project, viewer, state, reason, viewer_uuid, resultsfolder, db_path, \
     user, apikey, urluuid, address, domain, created_ms, updated_ms, lease_until_ms, job_started_ms, \
     relaunch_pending, relaunch_user, job_id, node, waiting, platform_path, platform_sha256";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Instance> {
    let (pair, state) = pair_and_state(r)?;
    Ok(Instance {
        generation: r.get(0)?,
        pair,
        state,
        reason: r.get(4)?,
        viewer_uuid: r.get(5)?,
        resultsfolder: r.get(6)?,
        db_path: r.get(7)?,
        user: r.get(8)?,
        apikey: r.get(9)?,
        urluuid: r.get(10)?,
        address: r.get(11)?,
        domain: r.get(12)?,
        created_ms: r.get(13)?,
        updated_ms: r.get(14)?,
        lease_until_ms: r.get(15)?,
        job_started_ms: r.get(16)?,
        relaunch_pending: r.get(17)?,
        relaunch_user: r.get(18)?,
        job_id: r.get(19)?,
        node: r.get(20)?,
        waiting: r.get(21)?,
        platform: match (r.get::<_, Option<String>>(22)?, r.get::<_, Option<String>>(23)?) {
            (Some(path), Some(sum)) => Some((path, sum)),
            _ => None,
        },
    })
}

fn query_one(conn: &Connection, where_: &str, p: impl rusqlite::Params) -> Db<Option<Instance>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE {where_}");
    Ok(conn.prepare_cached(&sql)?.query_row(p, from_row).optional()?)
}

fn query_all(conn: &Connection, where_: &str, p: impl rusqlite::Params) -> Db<Vec<Instance>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE {where_}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The instance that currently holds the pair's lock, if any.
pub fn live(conn: &Connection, pair: &Pair) -> Db<Option<Instance>> {
    query_one(conn, &format!("project = ?1 AND viewer = ?2 AND {LIVE}"), params![pair.project(), pair.viewer()])
}

/// The newest instance behind a front door path (the urluuid is stable per pair).
///
/// Read for every request through the front door. `+?1`, not `?1`: with `ORDER BY
/// generation`, SQLite's planner weighs `urluuid = ?1` as a filter on a rowid scan and marks
/// the statement for re-preparing whenever ?1 is bound again, which rusqlite's statement
/// cache does on every use (the whole statement parsed per request: 80 % of this read's
/// time). The unary plus keeps the same plan (the instances_by_urluuid index).
pub fn by_urluuid(conn: &Connection, urluuid: &str) -> Db<Option<Instance>> {
    query_one(conn, BY_URLUUID, params![urluuid])
}

const BY_URLUUID: &str = "urluuid = +?1 ORDER BY generation DESC LIMIT 1";

pub fn by_generation(conn: &Connection, generation: i64) -> Db<Option<Instance>> {
    query_one(conn, "generation = ?1", params![generation])
}

/// The newest instance of the pair, live or not.
///
/// Behind every launch and every job-side call; `+?1`/`+?2` for the reason given at
/// [`by_urluuid`] (a re-prepare per use cost 45 µs against 10 µs).
pub fn latest(conn: &Connection, pair: &Pair) -> Db<Option<Instance>> {
    query_one(conn, LATEST, params![pair.project(), pair.viewer()])
}

const LATEST: &str = "project = +?1 AND viewer = +?2 ORDER BY generation DESC LIMIT 1";

/// The pair's newest instance, if `generation` is it; otherwise the fault a stale or
/// unknown generation deserves. Shared by every job-side method.
pub fn current(c: &Connection, pair: &Pair, generation: i64) -> Db<Instance> {
    match latest(c, pair)? {
        Some(i) if i.generation == generation => Ok(i),
        Some(i) if generation < i.generation => Err(RpcError::new(
            vrun_proto::FaultCode::StaleGeneration,
            format!("generation {generation} of {pair} is stale; the current one is {}", i.generation),
        )
        .into()),
        _ => {
            Err(RpcError::new(vrun_proto::FaultCode::UnknownInstance, format!("no generation {generation} of {pair}"))
                .into())
        }
    }
}

pub fn all_live(conn: &Connection) -> Db<Vec<Instance>> {
    query_all(conn, LIVE, [])
}

/// How many live instances the periodic passes (sweep, idle check, start-up repair) hold in
/// memory at once. Reading all 10,000 whole rows each sweep grew the daemon by 30 MB that
/// glibc kept in the blocking threads' arenas (docs/performance.md); pages bound it.
pub const PAGE: usize = 1000;

/// The generations of every live instance, in order (8 bytes each, not a whole row).
pub fn live_generations(conn: &Connection) -> Db<Vec<i64>> {
    Ok(live_jobs(conn)?.into_iter().map(|(g, _)| g).collect())
}

/// Every live instance's generation, in order, and whether its job had been started.
pub fn live_jobs(conn: &Connection) -> Db<Vec<(i64, bool)>> {
    let sql = format!("SELECT generation, job_started_ms IS NOT NULL FROM instances WHERE {LIVE} ORDER BY generation");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Live instances with generations in `first..=last`, in order.
pub fn live_between(conn: &Connection, first: i64, last: i64) -> Db<Vec<Instance>> {
    query_all(conn, &format!("generation BETWEEN ?1 AND ?2 AND {LIVE} ORDER BY generation"), params![first, last])
}

/// Up to `limit` live instances in `state` after generation `after`, in order: a page.
pub fn in_state_after(conn: &Connection, state: ViewerState, after: i64, limit: usize) -> Db<Vec<Instance>> {
    query_all(
        conn,
        "state = ?1 AND generation > ?2 ORDER BY generation LIMIT ?3",
        params![state.as_str(), after, limit as i64],
    )
}

/// Live instances whose lease ran out before `now_ms`.
pub fn expired(conn: &Connection, now_ms: i64) -> Db<Vec<Instance>> {
    query_all(conn, &format!("{LIVE} AND lease_until_ms < ?1"), params![now_ms])
}

/// The newest instance of every pair.
pub fn latest_per_pair(conn: &Connection) -> Db<Vec<Instance>> {
    query_all(
        conn,
        "generation IN (SELECT max(generation) FROM instances GROUP BY project, viewer) ORDER BY project, viewer",
        [],
    )
}

/// The newest stored viewer database archive of the pair whose file is there. A row whose
/// file vanished (a power loss before the directory reached the disk, a careless admin) made
/// every launch of the pair fail; the next older version is restored instead (issue 13).
///
/// On every launch's path: `+?1`/`+?2` for the reason given at [`by_urluuid`] (without them
/// this statement was parsed again at each launch, 17 % of the store writer's time).
pub fn newest_archive(conn: &Connection, pair: &Pair) -> Db<Option<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT path FROM archives WHERE project = +?1 AND viewer = +?2 ORDER BY generation DESC, version DESC",
    )?;
    let paths = stmt.query_map(params![pair.project(), pair.viewer()], |r| r.get::<_, String>(0))?;
    for path in paths {
        let path = path?;
        if std::path::Path::new(&path).is_file() {
            return Ok(Some(path));
        }
        tracing::warn!(pair = %pair, path, "stored archive is missing; restoring the next older one");
    }
    Ok(None)
}

/// The archive a caller's `db_path` names: the version id of an archive agent-monitor stored
/// for this same pair. A path is never taken from a caller: the job (root) copies the file
/// into the VM, so `db_path=<state>/secrets/jobs.key` or another project's archive would
/// have been shown to this viewer's users (issue 13). Anything else is fault 1.
pub fn archive_by_version(conn: &Connection, pair: &Pair, db_path: &str) -> Db<String> {
    let Some(version) = db_path.trim().parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(RpcError::invalid_params(
            "db_path must be the version id of an archive stored for this pair (a path is not accepted)",
        )
        .into());
    };
    conn.prepare_cached("SELECT path FROM archives WHERE version = ?1 AND project = ?2 AND viewer = ?3")?
        .query_row(params![version, pair.project(), pair.viewer()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| {
            RpcError::invalid_params(format!("db_path: no stored archive version {version} for {pair}")).into()
        })
}

/// What a launch asks for.
#[derive(Debug, Clone, Default)]
pub struct LaunchParams {
    pub viewer_uuid: Option<String>,
    pub resultsfolder: Option<String>,
    pub db_path: Option<String>,
    pub user: Option<String>,
    /// A platform to run instead of the current one (path, checksum): a platform check's
    /// scratch VM. Never from a caller.
    pub platform: Option<(String, String)>,
}

/// Creates a new live instance for a pair that has none, and the job that will run it.
/// The unique index makes a second live instance impossible even if a caller forgot to check.
pub fn create(
    conn: &Connection,
    pair: &Pair,
    p: &LaunchParams,
    ctx: &JobContext,
    now_ms: i64,
    reason: &str,
) -> Db<(Instance, Option<Effect>)> {
    let prev = latest(conn, pair)?;
    create_after(conn, prev.as_ref(), pair, p, ctx, now_ms, reason)
}

/// [`create`] for a caller that has just read the pair's newest instance (`prev`, ended, or
/// `None` for a new pair) in the same transaction: a launch reads it anyway to find the
/// lock's holder, and every statement here runs on the one writer thread.
pub fn create_after(
    conn: &Connection,
    prev: Option<&Instance>,
    pair: &Pair,
    p: &LaunchParams,
    ctx: &JobContext,
    now_ms: i64,
    reason: &str,
) -> Db<(Instance, Option<Effect>)> {
    let full = crate::capacity::must_wait(conn, pair.viewer(), &ctx.capacity.get())?;
    let apikey = random_hex(32).map_err(|e| RpcError::new(vrun_proto::FaultCode::Internal, e.to_string()))?;
    // Stable per pair: a bookmarked or stored front door URL survives relaunches.
    let urluuid = match prev {
        Some(prev) => prev.urluuid.clone(),
        None => format!("proxy-{}", uuid::Uuid::new_v4()),
    };
    // An explicit version (an admin rolling back) wins; otherwise restore what the last run saved.
    let db_path = match &p.db_path {
        Some(d) => Some(archive_by_version(conn, pair, d)?),
        None => newest_archive(conn, pair)?,
    };
    // Users get only approved platforms: the one chosen (a platform check), else the newest
    // approved, else none (the configured one). Chosen in the INSERT itself: a launch runs on
    // the one writer thread, and a separate SELECT and UPDATE were two more statements each.
    // The new row is read back by its rowid, not taken from `INSERT … RETURNING`: SQLite
    // collects RETURNING rows in a temporary table, ~4 µs more per launch on the writer.
    let (chosen_path, chosen_sum) = match &p.platform {
        Some((path, sum)) => (Some(path.as_str()), Some(sum.as_str())),
        None => (None, None),
    };
    conn.prepare_cached(
        "INSERT INTO instances (project, viewer, state, reason, viewer_uuid, resultsfolder, db_path, user,
             apikey, urluuid, created_ms, updated_ms, lease_until_ms, platform_path, platform_sha256)
         SELECT ?1, ?2, 'launching', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11,
             coalesce(?12, newest.path), iif(?12 IS NULL, newest.sha256, ?13)
         FROM (SELECT 1) LEFT JOIN (SELECT path, sha256 FROM platforms WHERE state = 'approved'
             ORDER BY updated_ms DESC LIMIT 1) AS newest",
    )?
    .execute(params![
        pair.project(),
        pair.viewer(),
        reason,
        p.viewer_uuid,
        p.resultsfolder,
        db_path,
        p.user,
        apikey,
        urluuid,
        now_ms,
        now_ms + ctx.start_grace_ms,
        chosen_path,
        chosen_sum
    ])?;
    let generation = conn.last_insert_rowid();
    record_history(conn, generation, "", ViewerState::Launching, reason, now_ms)?;
    if let Some(why) = full {
        crate::capacity::wait(conn, generation)?;
        let place = crate::capacity::place_in_line(conn, generation)?;
        let waiting = crate::capacity::waiting_reason(place, &why);
        conn.prepare_cached("UPDATE instances SET reason = ?2 WHERE generation = ?1")?
            .execute(params![generation, waiting])?;
    }
    let inst = by_generation(conn, generation)?
        .ok_or_else(|| RpcError::new(vrun_proto::FaultCode::Internal, "inserted row vanished"))?;
    let start = (!inst.waiting).then_some(Effect::StartJob(inst.generation));
    Ok((inst, start))
}

pub fn job_spec(inst: &Instance, d: &JobContext) -> JobSpec {
    let (platform, platform_sha256) = match &inst.platform {
        Some((path, sum)) => (path.clone(), Some(sum.clone())),
        None => (d.platform.clone(), d.platform_sha256.clone()),
    };
    JobSpec {
        version: vrun_proto::job::JOB_VERSION,
        execrunid: inst.pair.execrunid(),
        intent: INTENT_VRUN.into(),
        project: inst.pair.project().into(),
        viewer: inst.pair.viewer().into(),
        generation: inst.generation,
        monitor_id: d.monitor_id.clone(),
        viewer_uuid: inst.viewer_uuid.clone(),
        resultsfolder: inst.resultsfolder.clone(),
        db_path: inst.db_path.clone(),
        user: inst.user.clone(),
        users: inst.user.iter().cloned().collect(),
        apikey: inst.apikey.clone(),
        urluuid: inst.urluuid.clone(),
        platform: platform.clone(),
        platform_name: std::path::Path::new(&platform).file_name().and_then(|n| n.to_str()).map(String::from),
        platform_sha256,
        // Filled by `fetchJob`, which reads the archive; a job reading `db_path` needs neither.
        db_sha256: None,
        db_size: None,
        memory_mib: d.memory_mib,
        vcpus: d.vcpus,
        agent_monitor_url: d.agent_monitor_url.clone(),
        job_token: Some(d.secrets.job_token(&inst.pair, inst.generation)),
        heartbeat_secs: d.heartbeat_secs,
    }
}

fn record_history(
    conn: &Connection,
    generation: i64,
    from: &str,
    to: ViewerState,
    reason: &str,
    now_ms: i64,
) -> Db<()> {
    conn.prepare_cached(
        "INSERT INTO history (generation, seq, at_ms, from_state, to_state, reason)
         VALUES (?1, (SELECT count(*) FROM history WHERE generation = ?1), ?2, ?3, ?4, ?5)",
    )?
    .execute(params![generation, now_ms, from, to.as_str(), reason])?;
    Ok(())
}

/// Moves an instance to `to`, recording the change. Legality is the caller's business
/// (jobs are checked, the reaper may fail anything live).
pub fn transition(conn: &Connection, inst: &mut Instance, to: ViewerState, reason: &str, now_ms: i64) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET state = ?2, reason = ?3, updated_ms = ?4 WHERE generation = ?1")?
        .execute(params![inst.generation, to.as_str(), reason, now_ms])?;
    record_history(conn, inst.generation, inst.state.as_str(), to, reason, now_ms)?;
    inst.state = to;
    inst.reason = reason.into();
    inst.updated_ms = now_ms;
    Ok(())
}

/// A new reason for an instance that stays in its state, recorded in its history.
pub fn set_reason(conn: &Connection, inst: &mut Instance, reason: &str, now_ms: i64) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET reason = ?2, updated_ms = ?3 WHERE generation = ?1")?
        .execute(params![inst.generation, reason, now_ms])?;
    inst.reason = reason.into();
    inst.updated_ms = now_ms;
    note(conn, inst, reason, now_ms)
}

/// Records a decision about an instance that does not change its state (e.g. the sweep
/// removed its domain).
pub fn note(conn: &Connection, inst: &Instance, reason: &str, now_ms: i64) -> Db<()> {
    record_history(conn, inst.generation, inst.state.as_str(), inst.state, reason, now_ms)
}

pub fn set_address(conn: &Connection, generation: i64, address: Option<&str>, domain: Option<&str>) -> Db<()> {
    conn.prepare_cached(
        "UPDATE instances SET address = coalesce(?2, address), domain = coalesce(?3, domain) WHERE generation = ?1",
    )?
    .execute(params![generation, address, domain])?;
    Ok(())
}

/// Sets the lease exactly: a heartbeat buys `lease` from now, no more (a longer start grace
/// must not outlive the job's first heartbeat).
pub fn set_lease(conn: &Connection, generation: i64, until_ms: i64) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET lease_until_ms = ?2 WHERE generation = ?1")?
        .execute(params![generation, until_ms])?;
    Ok(())
}

/// Extends a live instance's lease to `until_ms` unless it is already later (for renewals
/// that were kept in memory while the store could not commit).
pub fn extend_lease(conn: &Connection, generation: i64, until_ms: i64) -> Db<()> {
    conn.prepare_cached(&format!(
        "UPDATE instances SET lease_until_ms = max(lease_until_ms, ?2) WHERE generation = ?1 AND {LIVE}"
    ))?
    .execute(params![generation, until_ms])?;
    Ok(())
}

pub fn mark_job_started(conn: &Connection, generation: i64, now_ms: i64, job_id: Option<&str>) -> Db<()> {
    conn.prepare_cached(
        "UPDATE instances SET job_started_ms = coalesce(job_started_ms, ?2), job_id = coalesce(?3, job_id) WHERE generation = ?1",
    )?
    .execute(params![generation, now_ms, job_id])?;
    Ok(())
}

/// A job the job system holds in its queue: shown with the queue's reason, and its start
/// lease begins again (a queued job has not failed to start; it has not started).
pub fn mark_queued(conn: &Connection, generation: i64, reason: &str, lease_until_ms: i64) -> Db<()> {
    conn.prepare_cached(
        "UPDATE instances SET reason = ?2, lease_until_ms = max(lease_until_ms, ?3) WHERE generation = ?1 AND state = 'launching'",
    )?
    .execute(params![generation, reason, lease_until_ms])?;
    Ok(())
}

/// The node the job system says the job runs on.
pub fn set_node(conn: &Connection, generation: i64, node: &str) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET node = ?2 WHERE generation = ?1 AND node IS NOT ?2")?
        .execute(params![generation, node])?;
    Ok(())
}

pub fn set_relaunch(conn: &Connection, generation: i64, user: Option<&str>) -> Db<()> {
    conn.prepare_cached(
        "UPDATE instances SET relaunch_pending = 1, relaunch_user = coalesce(?2, relaunch_user) WHERE generation = ?1",
    )?
    .execute(params![generation, user])?;
    Ok(())
}

/// Drops a launch queued behind a stopping instance (an admin's kill means no relaunch).
pub fn clear_relaunch(conn: &Connection, inst: &mut Instance) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET relaunch_pending = 0, relaunch_user = NULL WHERE generation = ?1")?
        .execute(params![inst.generation])?;
    inst.relaunch_pending = false;
    inst.relaunch_user = None;
    Ok(())
}

/// Ends a live instance (stopped or failed) and, when a launch was queued behind it,
/// creates the next one. Returns the effects to carry out after the commit.
pub fn finish(
    conn: &Connection,
    inst: &mut Instance,
    to: ViewerState,
    reason: &str,
    ctx: &JobContext,
    now_ms: i64,
    job: ItsJob,
) -> Db<Vec<Effect>> {
    debug_assert!(to.is_terminal());
    transition(conn, inst, to, reason, now_ms)?;
    if inst.waiting {
        // Ended before its turn came (stopped or killed while waiting): out of the line.
        conn.prepare_cached("UPDATE instances SET waiting = 0 WHERE generation = ?1")?
            .execute(params![inst.generation])?;
        inst.waiting = false;
    }
    let mut effects = Vec::new();
    if job == ItsJob::Cancel {
        effects.push(Effect::CancelJob(inst.generation));
    }
    if inst.relaunch_pending {
        let p = LaunchParams {
            viewer_uuid: inst.viewer_uuid.clone(),
            resultsfolder: inst.resultsfolder.clone(),
            db_path: None,
            user: inst.relaunch_user.clone().or_else(|| inst.user.clone()),
            platform: None,
        };
        let why = format!("launch requested while generation {} was stopping", inst.generation);
        let (_, start) = create(conn, &inst.pair, &p, ctx, now_ms, &why)?;
        effects.extend(start);
    }
    // Room may have freed for launches waiting under a capacity limit.
    effects.extend(admit(conn, ctx, now_ms)?);
    Ok(effects)
}

/// Starts the waiting instances that now fit under the capacity limits ([`crate::capacity`]
/// decides which): run wherever room may have freed, in the same transaction.
pub fn admit(conn: &Connection, ctx: &JobContext, now_ms: i64) -> Db<Vec<Effect>> {
    let mut effects = Vec::new();
    for (generation, pair) in crate::capacity::admit(conn, &ctx.capacity.get(), ctx.start_grace_ms, now_ms)? {
        if let Some(mut inst) = live(conn, &pair)?.filter(|i| i.generation == generation) {
            set_reason(conn, &mut inst, "room freed: starting its job", now_ms)?;
        }
        effects.push(Effect::StartJob(generation));
    }
    Ok(effects)
}

pub fn history(conn: &Connection, generation: i64) -> Db<Vec<Transition>> {
    let mut stmt = conn
        .prepare_cached("SELECT at_ms, from_state, to_state, reason FROM history WHERE generation = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![generation], |r| {
        Ok(Transition { at: r.get::<_, i64>(0)? as f64 / 1000.0, from: r.get(1)?, to: r.get(2)?, reason: r.get(3)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl Instance {
    /// The record admins see (history left empty; callers add it when wanted).
    pub fn record(&self) -> InstanceRecord {
        InstanceRecord {
            project: self.pair.project().into(),
            viewer: self.pair.viewer().into(),
            generation: self.generation,
            state: self.state.as_str().into(),
            address: self.address.clone(),
            domain: self.domain.clone(),
            urluuid: self.urluuid.clone(),
            reason: self.reason.clone(),
            created: self.created_ms as f64 / 1000.0,
            updated: self.updated_ms as f64 / 1000.0,
            lease_expires: self.lease_until_ms as f64 / 1000.0,
            relaunch_pending: self.relaunch_pending,
            domain_exists: "unknown".into(),
            job_id: self.job_id.clone().unwrap_or_default(),
            node: self.node.clone().unwrap_or_default(),
            waiting: 0,
            history: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The front door reads this for every request: its cached statement must be used
    /// as prepared, not parsed again at each use (see `by_urluuid`).
    #[test]
    fn the_front_door_read_is_not_prepared_again_at_each_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.sqlite3")).unwrap();
        let reprepared = store
            .read_blocking(|c| {
                for _ in 0..5 {
                    by_urluuid(c, "proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b")?;
                }
                let st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM instances WHERE {BY_URLUUID}"))?;
                Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
    }

    /// The same for the newest instance of a pair (every launch and job-side call), and it
    /// still reads the pair's index.
    #[test]
    fn the_pair_read_is_not_prepared_again_and_uses_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.sqlite3")).unwrap();
        let pair = Pair::new("p1", "CodeDX").unwrap();
        let (reprepared, plan) = store
            .read_blocking(move |c| {
                for _ in 0..5 {
                    latest(c, &pair)?;
                }
                let sql = format!("SELECT {COLUMNS} FROM instances WHERE {LATEST}");
                let st = c.prepare_cached(&sql)?;
                let plan: Vec<String> = c
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                    .query_map(params!["p1", "CodeDX"], |r| r.get(3))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok((st.get_status(rusqlite::StatementStatus::RePrepare), plan.join("; ")))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
        assert!(plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"), "{plan}");
    }
}
