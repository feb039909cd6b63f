//! The in-memory map of live instances (`store::live`) against the SQLite file it mirrors:
//! after every acknowledged write, whatever SQL wrote it, `Store::live` answers exactly what a
//! query of the committed database answers, also for writes rolled back by their caller's
//! error, many writes grouped into one commit, and after reopening the file.

mod common;

use std::collections::BTreeMap;

use agent_monitor::store::{Db, LiveView, Store};
use rusqlite::{params, Connection};
use vrun_proto::{Pair, RpcError, ViewerState};

fn pair(i: usize) -> Pair {
    Pair::new(&format!("p{i}"), "CodeDX").unwrap()
}

/// What a live instance answers with: generation, state, waiting, address, key, URL path.
type Shape = (i64, ViewerState, bool, String, String, String);

fn shape(v: &LiveView) -> Shape {
    (v.generation, v.state, v.waiting, v.address().into(), v.apikey().into(), v.urluuid().into())
}

/// The truth: live rows as SQLite has them, in the map's shape.
async fn truth(store: &Store) -> BTreeMap<Pair, Shape> {
    store
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT generation, project, viewer, state, address, apikey, urluuid, waiting FROM instances
                 WHERE state NOT IN ('stopped', 'failed')",
            )?;
            let rows = stmt.query_map([], |r| {
                let state: ViewerState = r.get::<_, String>(3)?.parse().unwrap();
                let ready = state == ViewerState::Ready;
                let p = Pair::new(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?).unwrap();
                let key = |i| if ready { r.get(i) } else { Ok(String::new()) };
                Ok((p, (r.get(0)?, state, r.get(7)?, r.get(4)?, key(5)?, key(6)?)))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
        .unwrap()
}

async fn assert_mirrors(store: &Store, pairs: usize, when: &str) {
    let truth = truth(store).await;
    for i in 0..pairs {
        let p = pair(i);
        assert_eq!(store.live(&p).unwrap().as_ref().map(shape).as_ref(), truth.get(&p), "{when}: {p}");
    }
}

fn insert(c: &Connection, p: &Pair) -> Db<i64> {
    c.execute(
        "INSERT INTO instances (project, viewer, state, apikey, urluuid, created_ms, updated_ms, lease_until_ms)
         VALUES (?1, ?2, 'launching', lower(hex(randomblob(32))), 'proxy-' || lower(hex(randomblob(8))), 0, 0, 0)",
        params![p.project(), p.viewer()],
    )?;
    Ok(c.last_insert_rowid())
}

fn live_generation(c: &Connection, p: &Pair) -> Db<Option<i64>> {
    let mut stmt = c.prepare_cached(
        "SELECT generation FROM instances WHERE project = ?1 AND viewer = ?2 AND state NOT IN ('stopped', 'failed')",
    )?;
    let mut rows = stmt.query(params![p.project(), p.viewer()])?;
    Ok(rows.next()?.map(|r| r.get(0)).transpose()?)
}

fn set(c: &Connection, generation: i64, state: &str, address: &str) -> Db<()> {
    c.execute(
        "UPDATE instances SET state = ?2, address = ?3 WHERE generation = ?1",
        params![generation, state, address],
    )?;
    Ok(())
}

/// One step of a scripted life: launch, boot, ready, stop, fail, or a change that its caller
/// then abandons with an error.
fn step(c: &Connection, p: &Pair, op: u64) -> Db<()> {
    let live = live_generation(c, p)?;
    match (op % 7, live) {
        (_, None) => insert(c, p).map(drop),
        (0, Some(g)) => set(c, g, "booting", ""),
        (1, Some(g)) => set(c, g, "ready", &format!("127.0.0.1:{}", 20000 + g)),
        (2, Some(g)) => set(c, g, "stopping", ""),
        (3, Some(g)) => set(c, g, "stopped", ""),
        (4, Some(g)) => set(c, g, "failed", ""),
        (5, Some(g)) => {
            // Stopped and relaunched inside one savepoint: old generation out, new one in.
            set(c, g, "stopped", "")?;
            insert(c, p).map(drop)
        }
        (_, Some(g)) => {
            set(c, g, "ready", "127.0.0.1:1")?;
            Err(RpcError::invalid_params("caller gives up").into())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_mirrors_the_committed_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-monitor.db");
    let store = Store::open(&path).unwrap();
    const PAIRS: usize = 12;
    let mut rng: u64 = 0x9e3779b97f4a7c15;
    // Whether some round ended with a ready viewer (its key handed out): the script's last
    // step per pair depends on how the writes interleave, so the end alone proves nothing.
    let mut saw_ready = false;
    for round in 0..60 {
        // Up to 40 writes in flight at once, so that most batches group several callers.
        let mut calls = Vec::new();
        for _ in 0..(1 + round % 40) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (p, op) = (pair(rng as usize % PAIRS), rng >> 8);
            let s = store.clone();
            calls.push(tokio::spawn(async move { s.write(move |c| step(c, &p, op)).await }));
        }
        for c in calls {
            let _ = c.await.unwrap();
        }
        assert_mirrors(&store, PAIRS, &format!("round {round}")).await;
        saw_ready |= truth(&store).await.values().any(|v| v.1 == ViewerState::Ready && !v.4.is_empty());
    }
    assert!(saw_ready, "the script reached ready");
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_mirrors(&reopened, PAIRS, "after reopening").await;
}

#[tokio::test]
async fn an_acknowledged_write_is_read_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agent-monitor.db")).unwrap();
    let p = pair(1);
    let g = store
        .write({
            let p = p.clone();
            move |c| insert(c, &p)
        })
        .await
        .unwrap();
    assert_eq!(store.live(&p).unwrap().map(|v| (v.generation, v.state)), Some((g, ViewerState::Launching)));
    store.write(move |c| set(c, g, "ready", "127.0.0.1:4000")).await.unwrap();
    let v = store.live(&p).unwrap().unwrap();
    assert_eq!((v.state, v.address(), v.apikey().len()), (ViewerState::Ready, "127.0.0.1:4000", 64));
    store.write(move |c| set(c, g, "stopped", "")).await.unwrap();
    assert!(store.live(&p).unwrap().is_none());
    // Read connections cannot write behind the map's back.
    let e = store.read(move |c| set(c, g, "ready", "x")).await.unwrap_err();
    assert!(e.message.contains("readonly"), "{e:?}");
}

/// Readers racing the commits (so some of them land while the writer holds the map and read
/// SQLite instead): none ever sees a state older than one already acknowledged to the writer's
/// caller, nor goes backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_commits_never_go_back() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agent-monitor.db")).unwrap();
    let p = pair(7);
    // Progress as one number: generation * 10 + step, step 0 launching, 1 booting, 2 ready.
    let rank = |v: Option<&LiveView>| {
        v.map_or(0, |v| {
            v.generation * 10
                + if v.state == ViewerState::Ready {
                    2
                } else if v.state == ViewerState::Booting {
                    1
                } else {
                    0
                }
        })
    };
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, p, acked, done) = (store.clone(), p.clone(), Arc::clone(&acked), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut last, mut reads) = (0, 0u64);
                while !done.load(SeqCst) {
                    let floor = acked.load(SeqCst);
                    let now = store.live(&p).unwrap();
                    let r = rank(now.as_ref());
                    // 0 only between a stop and the next launch; stops are not acknowledged here.
                    assert!(r == 0 || r >= floor, "read {r} after {floor} was acknowledged");
                    assert!(r == 0 || r >= last, "went back from {last} to {r}");
                    last = last.max(r);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for _ in 0..40 {
        let g = store
            .write({
                let p = p.clone();
                move |c| insert(c, &p)
            })
            .await
            .unwrap();
        acked.store(g * 10, SeqCst);
        for (step, state, address) in [(1, "booting", ""), (2, "ready", "127.0.0.1:9")] {
            store.write(move |c| set(c, g, state, address)).await.unwrap();
            acked.store(g * 10 + step, SeqCst);
        }
        store.write(move |c| set(c, g, "stopped", "")).await.unwrap();
    }
    done.store(true, SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 1000, "readers ran ({reads} reads)");
}

/// A disk that fills in the middle of a group-commit batch (issue 13): SQLite rolls the
/// whole transaction back on SQLITE_FULL, and the rest of the batch then ran in autocommit,
/// each op committing alone while its caller heard fault 11 and the map never heard of it.
/// Every caller must hear the truth: Ok exactly when its write is in the database, and the
/// map must agree with SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_mid_batch_fails_the_batch_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _disk = common::Tmpfs::mount(dir.path(), "2m");
    let store = Store::open(&dir.path().join("agent-monitor.db")).unwrap();
    store.write(|c| Ok(c.execute_batch("CREATE TABLE filler (b BLOB)")?)).await.unwrap();
    // The first write holds the writer so that the others queue into one batch.
    let s = store.clone();
    let hold = tokio::spawn(async move {
        s.write(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok(())
        })
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    const PAIRS: usize = 10;
    let mut calls = Vec::new();
    for i in 0..PAIRS {
        let (s, p) = (store.clone(), pair(i));
        calls.push(tokio::spawn(async move {
            s.write(move |c| {
                insert(c, &p)?;
                if i == 5 {
                    // Larger than the disk: it fills while this op runs, mid-batch.
                    c.execute("INSERT INTO filler VALUES (randomblob(3000000))", [])?;
                }
                Ok(())
            })
            .await
        }));
        // In order, so that ops come both before and after the one that fills the disk.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    hold.await.unwrap().unwrap();
    let mut heard = Vec::new();
    for call in calls {
        heard.push(call.await.unwrap().is_ok());
    }
    assert!(!heard[5], "the op that filled the disk failed");
    let truth = truth(&store).await;
    for (i, ok) in heard.iter().enumerate() {
        assert_eq!(
            truth.contains_key(&pair(i)),
            *ok,
            "{}: the caller heard {}",
            pair(i),
            if *ok { "ok" } else { "a fault" }
        );
    }
    assert_mirrors(&store, PAIRS, "after the disk filled").await;
    // Space is back (the failed batch's pages are reused): writes work again.
    store.write(|c| insert(c, &pair(PAIRS))).await.unwrap();
}
