//! Capacity: limits on live viewers (in all, and per viewer type) and on VM starts at once.
//!
//! A View beyond a limit is not refused: the launch takes the pair's lock as always (the
//! row, so two clicks still make one instance), but the row is marked `waiting` and its job
//! is not started. Whenever room may have freed (an instance ended, or a start finished by
//! reaching `ready`), [`admit`] runs in that same transaction and starts the oldest waiting
//! instances that fit, first come, first served. A waiting instance holds no lease and meets
//! no launch deadline (it has no job yet); its place in line is shown by `viewerStatus`,
//! `isViewerAvailable` (member `waiting`), the REST API and launchviewer's progress. The
//! name is apart from `launchViewer`'s `queued`, which is a click kept during a stop.
//!
//! Under Slurm the cluster has limits of its own (nodes, CPUs, memory): a job it cannot place
//! waits in its queue (shown as "waiting for a free hypervisor"); these limits come first.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use vrun_proto::Pair;

use crate::store::Db;

/// A waiting instance's lease: it has no job to heartbeat, so it must never expire.
pub const NO_LEASE_END: i64 = i64::MAX / 4;

/// The limits; `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Live (non-waiting) instances in all.
    pub max_viewers: Option<usize>,
    /// Live (non-waiting) instances of one viewer type (`CodeDX`, …).
    pub per_type: BTreeMap<String, usize>,
    /// Instances between their job's start and `ready` (booting VMs keep a core busy).
    pub max_starts: Option<usize>,
}

impl Capacity {
    pub fn unlimited(&self) -> bool {
        self.max_viewers.is_none() && self.per_type.is_empty() && self.max_starts.is_none()
    }
}

/// Which limit keeps a launch waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Full {
    Total(usize),
    Type(usize, String),
    Starts(usize),
}

impl Full {
    /// Every viewer type waits behind this one (not only its own type).
    fn blocks_all(&self) -> bool {
        !matches!(self, Full::Type(..))
    }
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::Total(max) => write!(f, "the limit of {max} live viewers"),
            Full::Type(max, viewer) => write!(f, "the limit of {max} live {viewer} viewers"),
            Full::Starts(max) => write!(f, "the limit of {max} viewers starting at once"),
        }
    }
}

/// Which limit an instance of viewer type `viewer` would exceed if it started now.
pub fn no_room(conn: &Connection, viewer: &str, cap: &Capacity) -> Db<Option<Full>> {
    if cap.unlimited() {
        return Ok(None);
    }
    let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Db<usize> {
        Ok(conn.prepare_cached(sql)?.query_row(p, |r| r.get::<_, i64>(0))? as usize)
    };
    let admitted = "waiting = 0 AND state NOT IN ('stopped', 'failed')";
    if let Some(max) = cap.max_viewers {
        if count(&format!("SELECT count(*) FROM instances WHERE {admitted}"), &[])? >= max {
            return Ok(Some(Full::Total(max)));
        }
    }
    if let Some(max) = cap.max_starts {
        let starting = format!("SELECT count(*) FROM instances WHERE {admitted} AND state IN ('launching', 'booting')");
        if count(&starting, &[])? >= max {
            return Ok(Some(Full::Starts(max)));
        }
    }
    if let Some(&max) = cap.per_type.get(viewer) {
        if count(&format!("SELECT count(*) FROM instances WHERE {admitted} AND viewer = ?1"), &[&viewer])? >= max {
            return Ok(Some(Full::Type(max, viewer.to_string())));
        }
    }
    Ok(None)
}

/// Why a new launch of viewer type `viewer` must wait, if it must: a limit it would exceed,
/// or an earlier launch of its type already waiting (first come, first served).
pub fn must_wait(conn: &Connection, viewer: &str, cap: &Capacity) -> Db<Option<String>> {
    if cap.unlimited() {
        return Ok(None);
    }
    if let Some(full) = no_room(conn, viewer, cap)? {
        return Ok(Some(full.to_string()));
    }
    let earlier: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM instances WHERE waiting = 1 AND viewer = ?1
                 AND state NOT IN ('stopped', 'failed'))",
        )?
        .query_row(params![viewer], |r| r.get(0))?;
    Ok(earlier.then(|| format!("earlier {viewer} Views")))
}

/// Marks a just-created instance as waiting for room.
pub fn wait(conn: &Connection, generation: i64) -> Db<()> {
    conn.prepare_cached("UPDATE instances SET waiting = 1, lease_until_ms = ?2 WHERE generation = ?1")?
        .execute(params![generation, NO_LEASE_END])?;
    Ok(())
}

/// The 1-based place in line of a waiting generation (0 when it is not waiting).
pub fn place_in_line(conn: &Connection, generation: i64) -> Db<i64> {
    let waiting: bool = conn
        .prepare_cached("SELECT waiting FROM instances WHERE generation = ?1")?
        .query_row(params![generation], |r| r.get(0))
        .unwrap_or(false);
    if !waiting {
        return Ok(0);
    }
    Ok(conn
        .prepare_cached("SELECT count(*) FROM instances WHERE waiting = 1 AND generation <= ?1")?
        .query_row(params![generation], |r| r.get(0))?)
}

/// The reason shown while waiting.
pub fn waiting_reason(place: i64, why: &str) -> String {
    format!("waiting for room ({why}): number {place} in line")
}

/// Admits the waiting instances that fit, oldest first (clears `waiting`, gives them a
/// start lease of `start_grace_ms`), refreshes the others' place in line, and returns the
/// admitted generations: [`crate::instances::admit`] starts their jobs. First come, first
/// served: once one waits on a limit every type shares (the total, the starts), nobody
/// behind it starts; one waiting only on its own type's limit is passed by other types
/// (they do not compete for its room), never by its own.
pub fn admit(conn: &Connection, capacity: &Capacity, start_grace_ms: i64, now_ms: i64) -> Db<Vec<(i64, Pair)>> {
    let waiting: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT generation, project, viewer FROM instances
             WHERE waiting = 1 AND state NOT IN ('stopped', 'failed') ORDER BY generation",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut admitted = Vec::new();
    let mut place = 0;
    // Set once someone waits on a shared limit; names it for everyone behind.
    let mut all_blocked: Option<String> = None;
    let mut types_blocked = std::collections::BTreeSet::new();
    for (generation, project, viewer) in waiting {
        let why = match &all_blocked {
            Some(why) => Some(why.clone()),
            None if types_blocked.contains(&viewer) => Some(format!("earlier {viewer} Views")),
            None => match no_room(conn, &viewer, capacity)? {
                Some(full) => {
                    if full.blocks_all() {
                        all_blocked = Some(full.to_string());
                    } else {
                        types_blocked.insert(viewer.clone());
                    }
                    Some(full.to_string())
                }
                None => None,
            },
        };
        match why {
            None => {
                conn.prepare_cached("UPDATE instances SET waiting = 0, lease_until_ms = ?2 WHERE generation = ?1")?
                    .execute(params![generation, now_ms + start_grace_ms])?;
                admitted.push((generation, Pair::new(&project, &viewer).expect("stored names were validated")));
            }
            Some(why) => {
                place += 1;
                conn.prepare_cached("UPDATE instances SET reason = ?2 WHERE generation = ?1")?
                    .execute(params![generation, waiting_reason(place, &why)])?;
            }
        }
    }
    Ok(admitted)
}
