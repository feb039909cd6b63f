//! SQLite storage with group commit.
//!
//! One writer thread owns the write connection. Callers hand it closures; it runs every
//! closure that is waiting in one `BEGIN IMMEDIATE` transaction (each under its own
//! savepoint, so one caller's error rolls back only that caller's changes), commits with
//! `synchronous=FULL`, and only then answers each caller. So an acknowledged change is
//! always on disk, and concurrent callers share one fsync.
//!
//! Reads use a small pool of separate connections (WAL lets them run beside the writer),
//! except the two hottest, which read [`live`]'s in-memory map that the writer keeps. WAL
//! checkpoints run on a thread of their own ([`checkpoint`]), not in the writer's commits.

mod checkpoint;
mod live;
mod migrate;
mod rows;

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::oneshot;
use vrun_proto::{FaultCode, Pair, RpcError};

pub use live::LiveView;
use live::{LiveMap, Touched};
pub use rows::{pair_and_state, LIVE};

/// Largest number of callers whose changes share one transaction.
const MAX_BATCH: usize = 1024;

type Completion = Box<dyn FnOnce(bool) + Send>;
type Op = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Op>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<Path>,
    live: Arc<LiveMap>,
    touched: Touched,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(FaultCode::Internal, format!("storage error: {e}"))
}

/// Errors inside a store transaction: a fault decided by the handler, or SQLite failing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fault(#[from] RpcError),
    #[error("storage error: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl From<StoreError> for RpcError {
    fn from(e: StoreError) -> RpcError {
        match e {
            StoreError::Fault(f) => f,
            StoreError::Sql(e) => {
                tracing::error!(error = %e, "storage error");
                internal(e)
            }
        }
    }
}

/// Result of work inside a transaction.
pub type Db<T> = Result<T, StoreError>;

fn connect_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = connect(path)?;
    // Every write goes through the writer, whose update hook keeps the live map right.
    conn.execute_batch("PRAGMA query_only=ON;")?;
    Ok(conn)
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // rusqlite keeps 16 prepared statements by default; a launch alone uses about 14 and the
    // writer runs ~60 kinds of statement, so mixed load evicted and parsed them again.
    conn.set_prepared_statement_cache_capacity(96);
    // A small page cache per connection: the pool holds one connection per concurrent reader,
    // and SQLite's default 2 MB each added up to most of the daemon's memory. Lookups are
    // by index; the OS page cache holds the file anyway.
    conn.execute_batch("PRAGMA cache_size=-256;")?;
    // WAL: readers never block the writer. FULL: a commit is fsynced before it returns,
    // which is what makes an acknowledged launch survive kill -9 and power loss.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         PRAGMA busy_timeout=5000;",
    )?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let mut conn = connect(path)?;
        migrate::apply(&mut conn)?;
        let live = Arc::new(LiveMap::load(&conn)?);
        let touched = Touched::install(&mut conn)?;
        checkpoint::install(&mut conn, path)?;
        let (tx, rx) = mpsc::channel::<Op>();
        let writer_live = Arc::clone(&live);
        std::thread::Builder::new().name("store-writer".into()).spawn({
            let touched = touched.clone();
            move || writer_loop(conn, rx, &writer_live, &touched)
        })?;
        Ok(Store { writer: tx, readers: Arc::new(Mutex::new(Vec::new())), path: path.into(), live, touched })
    }

    /// The instance holding the pair's lock as of the last commit: from memory, or from a
    /// read connection while the writer is changing the map (see [`live`]).
    pub fn live(&self, pair: &Pair) -> Result<Option<LiveView>, RpcError> {
        match self.live.get(pair) {
            Ok(view) => Ok(view),
            Err(live::Busy) => self.read_blocking(|c| Ok(live::read(c, pair)?)),
        }
    }

    /// Runs `f` inside the next group-commit transaction and answers after the commit.
    /// If `f` fails its changes are rolled back and nothing else is affected.
    pub async fn write<T, F>(&self, f: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Db<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            let result = run_in_savepoint(conn, f).map_err(RpcError::from);
            Box::new(move |committed| {
                let _ = tx.send(if committed { result } else { Err(internal("commit failed")) });
            })
        });
        self.writer.send(op).map_err(|_| RpcError::new(FaultCode::ShuttingDown, "store is closed"))?;
        rx.await.map_err(|_| internal("writer stopped"))?
    }

    /// [`Store::write`] for a change to columns the live map does not hold (leases only): the
    /// rows it touches are not read back at commit. Renewing 100,000 leases at start-up was
    /// otherwise 100,000 point reads before the daemon could serve.
    pub async fn write_unmapped<T, F>(&self, f: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Db<T> + Send + 'static,
    {
        let touched = self.touched.clone();
        self.write(move |c| {
            // Ops run one after another on the writer thread: what this one adds is the tail.
            let before = touched.len();
            let result = f(c);
            touched.truncate(before);
            result
        })
        .await
    }

    /// Runs `f` on a read connection (never blocks the writer).
    pub async fn read<T, F>(&self, f: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Db<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f)).await.map_err(internal)?
    }

    /// Runs `f` on a read connection on this thread (for threads that may block).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Db<T>) -> Result<T, RpcError> {
        let pooled = self.readers.lock().map_err(internal)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect_reader(&self.path).map_err(internal)?,
        };
        let result = f(&conn).map_err(RpcError::from);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        result
    }
}

/// Runs one statement from the connection's statement cache: the writer brackets every op
/// in a savepoint, and `execute_batch` parsed those statements again each time.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn run_in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Db<T>) -> Db<T> {
    exec_cached(conn, "SAVEPOINT op")?;
    // A bug that panics inside one change must not stop the writer thread, and with it every
    // later write of the daemon ("writer stopped" for all, until a restart): it is that
    // caller's fault 11 instead, and its changes are rolled back like any error's.
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("a change panicked; rolled back, the writer goes on");
            Err(internal("a defect stopped this change; nothing of it was kept").into())
        }
    };
    if result.is_err() {
        exec_cached(conn, "ROLLBACK TO op")?;
    }
    exec_cached(conn, "RELEASE op")?;
    result
}

/// The writer's real-time priority: the lowest there is, above every ordinary thread.
const WRITER_RT_PRIORITY: i32 = 1;
/// The writer's nice value where real-time scheduling is not allowed.
const WRITER_NICE: i32 = -5;

/// Every state change of the daemon waits for this one thread, while the rest of its work
/// (requests, job starts, jobs themselves) runs in parallel: on a busy host the writer must
/// not queue for a CPU behind them. The durable-launch bench found it runnable but waiting
/// for a CPU 30 % of its load's wall time at nice -5 (as long as it ran at nice 0), because
/// a woken thread waits for the running one's slice; at `SCHED_RR` priority 1 it waits
/// 0–2 %, and launches/s rose 12–14 % on a quiet host (docs/performance.md).
///
/// Real-time is safe here because the writer never computes for long: each batch is a few
/// milliseconds of SQLite work ending in an fsync, and the longest single transaction (the
/// lease renewal at start, one `UPDATE` over every live row) is a fraction of a second at
/// 100,000 instances; the kernel's real-time throttling (`sched_rt_runtime_us`, 95 % by
/// default) bounds even a defect. `SCHED_RESET_ON_FORK`: nothing it might start inherits
/// the policy. Needs CAP_SYS_NICE (agent-monitor runs as root); without it, or where a
/// cgroup grants no real-time time, nice -5; without that either, the daemon's priority.
fn favour_this_thread() {
    let param = libc::sched_param { sched_priority: WRITER_RT_PRIORITY };
    // SAFETY: plain syscalls on the calling thread (pid 0 = this thread).
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) } == 0 {
        tracing::debug!("store writer at SCHED_RR priority {WRITER_RT_PRIORITY}");
        return;
    }
    let rt_error = std::io::Error::last_os_error();
    // SAFETY: plain syscalls on this thread's id.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICE) } == 0 {
        tracing::debug!(error = %rt_error, "store writer at nice {WRITER_NICE} (real-time not permitted)");
    } else {
        tracing::debug!(error = %std::io::Error::last_os_error(), "store writer keeps the daemon's priority");
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Op>, live: &LiveMap, touched: &Touched) {
    favour_this_thread();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin transaction");
            // Without a transaction nothing may be written: refuse the whole batch.
            for op in batch {
                let done = op_refused(op, &conn);
                done(false);
            }
            touched.take();
            continue;
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut lost = false;
        for op in batch {
            if lost {
                completions.push(op_refused(op, &conn));
                continue;
            }
            completions.push(op(&conn));
            // On SQLITE_FULL or an I/O error SQLite may roll the whole transaction back, not
            // just the op's savepoint. The rest of the batch would then run in autocommit,
            // each op committing alone at its RELEASE while its caller hears fault 11 and the
            // live map never learns of it (issue 13). So the batch ends here, for everyone:
            // what ran is gone, what did not run is refused.
            if conn.is_autocommit() {
                tracing::error!("the batch's transaction was rolled back by SQLite (disk full or I/O error); failing the whole batch");
                lost = true;
            }
        }
        let committed = if lost {
            touched.take();
            false
        } else {
            let began = std::time::Instant::now();
            let ok = commit_batch(&conn, live, touched);
            crate::metrics::global().store_commit.observe(began.elapsed());
            ok
        };
        // Callers hear back only now, so a caller reads its own write from the map too.
        for done in completions {
            done(committed);
        }
    }
    tracing::debug!("store writer stopped");
}

/// Commits the batch and swaps the rows it touched into the live map under the same lock.
fn commit_batch(conn: &Connection, live: &LiveMap, touched: &Touched) -> bool {
    match live.pending(conn, &mut touched.take()) {
        Ok(pending) => live.commit_with(pending, || match conn.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "commit failed; rolling back the batch");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        }),
        Err(e) => {
            // The map could not follow this batch, so the batch must not happen.
            tracing::error!(error = %e, "cannot read back the batch's instances; rolling it back");
            let _ = conn.execute_batch("ROLLBACK");
            false
        }
    }
}

/// An op that cannot run gets its completion called with `false` without touching the db.
fn op_refused(op: Op, conn: &Connection) -> Completion {
    // Running it inside a savepoint that is rolled back leaves nothing behind.
    let _ = conn.execute_batch("SAVEPOINT refused");
    let done = op(conn);
    let _ = conn.execute_batch("ROLLBACK TO refused; RELEASE refused");
    done
}

/// Every statement prepared on `conn` that SQLite had to prepare again at a later use, with
/// how often (tests: a statement whose plan depends on its bound values is parsed again at
/// every use from the statement cache, see `instances::by_urluuid`).
#[cfg(test)]
pub fn reprepared(conn: &Connection) -> Vec<(String, i32)> {
    use rusqlite::ffi;
    let mut found = Vec::new();
    // SAFETY: the handle is this connection's, used on its own thread; statements are only
    // read (their SQL and a counter), none is stepped or finalized.
    unsafe {
        let db = conn.handle();
        let mut st = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !st.is_null() {
            let n = ffi::sqlite3_stmt_status(st, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            if n > 0 {
                found.push((std::ffi::CStr::from_ptr(ffi::sqlite3_sql(st)).to_string_lossy().into_owned(), n));
            }
            st = ffi::sqlite3_next_stmt(db, st);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_that_panics_is_refused_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite3")).unwrap();
        fn put(c: &Connection, v: i64) -> Db<()> {
            c.execute(
                "INSERT INTO archives (project, viewer, generation, checksum, size, path, stored_ms)
                 VALUES ('p', 'v', ?1, '', 0, '', 0)",
                [v],
            )?;
            Ok(())
        }
        let panicked = store
            .write(|c| -> Db<()> {
                put(c, 1)?;
                panic!("a defect");
            })
            .await;
        assert_eq!(panicked.unwrap_err().code, FaultCode::Internal);
        store.write(|c| put(c, 2)).await.expect("the writer still writes");
        let kept: Vec<i64> = store
            .read(|c| {
                Ok(c.prepare("SELECT generation FROM archives")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(kept, [2], "the panicked change was rolled back");
    }

    /// Every state change waits for the writer, so it must not queue for a CPU behind the
    /// daemon's other threads: real-time where permitted (as root), and nothing started from
    /// it keeps that.
    #[tokio::test]
    async fn the_writer_runs_real_time_and_passes_it_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite3")).unwrap();
        let (writer, child) = store
            .write(|_| {
                // SAFETY: sched_getscheduler(0) asks about the calling thread.
                let me = unsafe { libc::sched_getscheduler(0) };
                let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) }).join().unwrap();
                Ok((me, child))
            })
            .await
            .unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(writer, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, "the writer is not real-time");
        } else {
            assert_eq!(writer & !libc::SCHED_RESET_ON_FORK, libc::SCHED_OTHER);
        }
        assert_eq!(child, libc::SCHED_OTHER, "a thread started by the writer inherited its policy");
    }
}
