//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints in the connection that commits: every 1,000 WAL pages the
//! store's one writer copied them back into the database file and fsynced it before it could
//! begin its next batch, while every state change of the daemon waited for it (4 % of the
//! writer's CPU in the durable-launch bench, and the fsync's wall time; docs/performance.md).
//! Here a commit that leaves [`PAGES`] or more in the WAL only wakes the `store-checkpoint`
//! thread, which runs a PASSIVE checkpoint on its own connection: that never blocks the writer
//! or the readers, and the writer starts the WAL over once a checkpoint has copied all of it.
//! Should the thread fall behind, the writer checkpoints itself from [`BACKSTOP`] pages on, so
//! the WAL stays bounded as before.
//!
//! The thread ends when the writer's connection is closed (the wake-up channel closes with it).

use std::path::Path;
use std::sync::mpsc;

use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

/// WAL pages after a commit that call for a checkpoint (SQLite's own default threshold).
pub const PAGES: i32 = 1000;

/// WAL pages from which the writer checkpoints itself (the thread fell behind or is gone).
pub const BACKSTOP: i32 = 16 * PAGES;

/// Moves the checkpoints of `writer` (the store's write connection) to a thread of their own
/// with a connection to `path`.
pub fn install(writer: &mut Connection, path: &Path) -> anyhow::Result<()> {
    let own = super::connect(path)?;
    // One pending wake-up is enough: a checkpoint copies everything committed before it.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new().name("store-checkpoint".into()).spawn(move || {
        while woken.recv().is_ok() {
            if let Err(e) = own.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                tracing::warn!(error = %e, "WAL checkpoint failed; the next commit asks again");
            }
        }
        tracing::debug!("store checkpoints stopped");
    })?;
    // The WAL's size at the last wake-up: the thread is woken once per PAGES new pages, as
    // often as SQLite's own checkpoint would run. Waking it after every commit past PAGES
    // (the WAL only starts over once a checkpoint has caught up with the writer, which under
    // load it rarely does) checkpointed ~70 times a second, two fsyncs each, 7 % of the
    // daemon's CPU.
    let mut woken_at = 0;
    // Registering a hook also turns SQLite's automatic checkpoint off for this connection.
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages < woken_at {
            woken_at = 0; // the WAL started over
        }
        if pages >= BACKSTOP {
            // An error returned from here would fail the COMMIT that has already happened.
            if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::warn!(error = %e, pages, "WAL checkpoint by the writer failed");
            }
        } else if pages - woken_at >= PAGES {
            woken_at = pages;
            let _ = wake.try_send(());
        }
        Ok(())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn db_pages(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len() / 4096).unwrap_or(0)
    }

    /// Commits that fill the WAL are copied into the database file by the checkpoint thread
    /// (without it, nothing would be: the writer's own automatic checkpoint is off).
    #[tokio::test]
    async fn commits_past_the_threshold_are_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let store = Store::open(&path).unwrap();
        let before = db_pages(&path);
        // ~1,500 pages: past PAGES, far below BACKSTOP (the writer never checkpoints here).
        for batch in 0..30 {
            store
                .write(move |c| {
                    for i in 0..50 {
                        c.execute(
                            "INSERT INTO archives (project, viewer, generation, checksum, size, path, stored_ms)
                             VALUES ('p', 'v', ?1, ?2, 0, '', 0)",
                            rusqlite::params![batch * 50 + i, "x".repeat(4000)],
                        )?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // The first PAGES of them at least (a checkpoint when the WAL reached PAGES).
        while db_pages(&path) < before + 800 {
            assert!(std::time::Instant::now() < deadline, "the WAL was not checkpointed: {} pages", db_pages(&path));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
