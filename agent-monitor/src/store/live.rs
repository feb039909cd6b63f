//! The live instances in memory, for the two reads every View makes: `launchViewer` finding
//! the pair already held and `isViewerAvailable`. Answering those from SQLite (a read
//! transaction with its WAL locks, a prepared statement, a row decode) was a fifth of the
//! daemon's CPU per call (docs/performance.md).
//!
//! The map is kept equal to the committed database by the writer thread alone: SQLite's
//! update hook on the write connection records every `instances` row a batch touched, the
//! writer reads those rows back inside the still-open transaction, and it applies the changes
//! while holding the map's write lock across `COMMIT`. So a reader of the map never sees a
//! state that SQLite readers cannot see yet, nor an old one once they can, and a caller
//! whose write was acknowledged reads it back here. Readers never wait for that lock: while
//! it is held (an fsync, milliseconds) they read the row from SQLite instead, which is the
//! truth by definition; blocking tokio's workers on it instead stalled every request behind
//! each commit (storm p99 146 ms). Read connections are `query_only`, so no write can bypass
//! the hook. Batches that change nothing the map holds (heartbeats, leases, job start
//! marks, history) do not take the lock at all.
//!
//! At 100,000 live instances the map is most of the daemon's memory, so an entry is small:
//! the pair as one string (`project.viewer`; names have no dots), and the instance as its
//! generation, state and flag, with the address, key and URL path behind one shared pointer
//! only for an instance that has them (a booting one does not). At 100,000 live instances
//! the daemon's peak RSS fell from 60.3 to 46 MB with it (docs/performance.md, scale).

use std::hash::{Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};

use hashbrown::{Equivalent, HashMap};
use rusqlite::{params, Connection, OptionalExtension, Row};
use vrun_proto::{Pair, ViewerState};

use super::rows::{pair_and_state, LIVE};

/// What the hot reads answer from: one live instance. Cheap to copy out of the map (at
/// most one reference count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveView {
    pub generation: i64,
    pub state: ViewerState,
    /// Waiting for room under a capacity limit (its place in line is read when asked).
    pub waiting: bool,
    /// `None` while the instance has no address yet.
    reach: Option<Arc<Reach>>,
}

/// Where a live instance answers. The key and URL path are empty unless `ready`: they are
/// handed out only then.
#[derive(Debug, PartialEq, Eq)]
struct Reach {
    address: String,
    apikey: String,
    urluuid: String,
}

impl LiveView {
    pub fn address(&self) -> &str {
        self.reach.as_ref().map_or("", |r| &r.address)
    }

    pub fn apikey(&self) -> &str {
        self.reach.as_ref().map_or("", |r| &r.apikey)
    }

    pub fn urluuid(&self) -> &str {
        self.reach.as_ref().map_or("", |r| &r.urluuid)
    }
}

/// A pair as the map's key: `project.viewer` in one allocation.
#[derive(PartialEq, Eq)]
struct Key(Box<str>);

impl Key {
    fn new(pair: &Pair) -> Key {
        Key(format!("{}.{}", pair.project(), pair.viewer()).into_boxed_str())
    }

    fn parts(&self) -> (&str, &str) {
        // Validated names never contain a dot, so the first one separates them.
        self.0.split_once('.').unwrap_or((&self.0, ""))
    }
}

/// A lookup by `&Pair` hashes and compares the two names as the key does, without building
/// a key string per call.
struct Lookup<'a>(&'a Pair);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (project, viewer) = self.parts();
        project.hash(h);
        viewer.hash(h);
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.project().hash(h);
        self.0.viewer().hash(h);
    }
}

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        key.parts() == (self.0.project(), self.0.viewer())
    }
}

/// std's randomly keyed SipHash: pair names come from clients.
type Map = HashMap<Key, LiveView, RandomState>;

#[derive(Default)]
pub struct LiveMap {
    map: RwLock<Map>,
}

/// The map is being changed under a commit right now.
pub(super) struct Busy;

/// The pair's live instance read from the database, in the map's shape: the answer while
/// the map is [`Busy`].
pub(super) fn read(conn: &Connection, pair: &Pair) -> rusqlite::Result<Option<LiveView>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE project = ?1 AND viewer = ?2 AND {LIVE}");
    let row = conn.prepare_cached(&sql)?.query_row(params![pair.project(), pair.viewer()], from_row).optional()?;
    Ok(row.map(|(_, view)| view))
}

/// Changes to apply once the batch that made them has committed.
pub(super) struct Pending(Vec<(Pair, i64, Option<LiveView>)>);

const COLUMNS: &str = "generation, project, viewer, state, address, apikey, urluuid, waiting";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(Pair, LiveView)> {
    let (pair, state) = pair_and_state(r)?;
    let ready = state == ViewerState::Ready;
    let address: String = r.get(4)?;
    let reach = (ready || !address.is_empty()).then(|| -> rusqlite::Result<_> {
        let (apikey, urluuid) = if ready { (r.get(5)?, r.get(6)?) } else { Default::default() };
        Ok(Arc::new(Reach { address, apikey, urluuid }))
    });
    let view = LiveView { generation: r.get(0)?, state, waiting: r.get(7)?, reach: reach.transpose()? };
    Ok((pair, view))
}

impl LiveMap {
    /// Every live instance in the database (at open, before anything else runs).
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<LiveMap> {
        // Sized once from a count: growing by doubling would hold the old table beside the
        // new one at the peak.
        let count: i64 = conn.query_row(&format!("SELECT count(*) FROM instances WHERE {LIVE}"), [], |r| r.get(0))?;
        let mut map = Map::with_capacity_and_hasher(usize::try_from(count).unwrap_or(0), RandomState::new());
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM instances WHERE {LIVE}"))?;
        for row in stmt.query_map([], from_row)? {
            let (pair, view) = row?;
            map.insert(Key::new(&pair), view);
        }
        Ok(LiveMap { map: RwLock::new(map) })
    }

    /// The instance holding the pair's lock, as of the last commit; `Err(Busy)` while the
    /// writer is committing a change to the map (then the database is the answer).
    pub(super) fn get(&self, pair: &Pair) -> Result<Option<LiveView>, Busy> {
        match self.map.try_read() {
            Ok(map) => Ok(map.get(&Lookup(pair)).cloned()),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner().get(&Lookup(pair)).cloned()),
            Err(TryLockError::WouldBlock) => Err(Busy),
        }
    }

    /// Reads the touched rows inside the open transaction and keeps what differs from the map.
    pub(super) fn pending(&self, conn: &Connection, touched: &mut Vec<i64>) -> rusqlite::Result<Pending> {
        touched.sort_unstable();
        touched.dedup();
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM instances WHERE generation = ?1"))?;
        let mut changes = Vec::new();
        for &generation in touched.iter() {
            // No row: its insert was rolled back with the caller's savepoint.
            let Some((pair, view)) = stmt.query_row(params![generation], from_row).optional()? else { continue };
            let current = map.get(&Lookup(&pair));
            if !view.state.is_terminal() {
                if current.is_none_or(|c| *c != view) {
                    changes.push((pair, generation, Some(view)));
                }
            } else if current.is_some_and(|c| c.generation == generation) {
                changes.push((pair, generation, None));
            }
        }
        touched.clear();
        Ok(Pending(changes))
    }

    /// Runs `commit` and, if it succeeded, applies `pending`, holding the write lock across
    /// both when there is anything to apply. Returns what `commit` returned.
    pub(super) fn commit_with(&self, pending: Pending, commit: impl FnOnce() -> bool) -> bool {
        if pending.0.is_empty() {
            return commit();
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let committed = commit();
        if committed {
            for (pair, generation, view) in pending.0 {
                match view {
                    Some(v) => match map.get_mut(&Lookup(&pair)) {
                        Some(current) => *current = v,
                        None => {
                            map.insert(Key::new(&pair), v);
                        }
                    },
                    // Only the generation that ended leaves; a newer one may hold the pair.
                    None if map.get(&Lookup(&pair)).is_some_and(|c| c.generation == generation) => {
                        map.remove(&Lookup(&pair));
                    }
                    None => {}
                }
            }
        }
        committed
    }
}

/// The `instances` rows written since the last batch, recorded by SQLite's update hook.
#[derive(Clone, Default)]
pub(super) struct Touched(Arc<Mutex<Vec<i64>>>);

impl Touched {
    pub(super) fn install(conn: &mut Connection) -> rusqlite::Result<Touched> {
        let touched = Touched::default();
        let rows = Arc::clone(&touched.0);
        conn.update_hook(Some(move |_, _: &str, table: &str, rowid: i64| {
            if table == "instances" {
                rows.lock().unwrap_or_else(PoisonError::into_inner).push(rowid);
            }
        }))?;
        Ok(touched)
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Forgets rows recorded after the first `len` (a change the map does not follow).
    pub(super) fn truncate(&self, len: usize) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).truncate(len);
    }

    pub(super) fn take(&self) -> Vec<i64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
