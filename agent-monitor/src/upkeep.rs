//! Upkeep: what ended instances leave behind is removed after a retention period.
//!
//! After `retention` (default 30 days) an ended instance's job file, job log and job lock
//! file are removed, and so are its history and push rows. Its instance row goes too, except
//! the newest of each pair: `viewerStatus` keeps answering for the pair, and the pair's
//! identity (its URL) lives on in it. Stored databases are never pruned here (the newest few
//! per pair are kept by `archives`; `deleteViewerDbs` removes them). A job that somehow
//! still runs keeps its files.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;

use crate::daemon::Daemon;
use crate::launcher::JobProbe;
use crate::store::now_ms;

/// How often to look, for a retention period: often enough that nothing outlives it by much.
pub fn every(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// One pass; returns (instance rows removed, generations whose files were removed).
pub async fn prune_once(m: &Arc<Daemon>, retention: Duration) -> (usize, usize) {
    let cutoff = now_ms() - retention.as_millis() as i64;
    let ended = m
        .store
        .write(move |c| {
            // Every ended instance past the cutoff whose files may still exist; of those, the
            // rows to remove (all but each pair's newest).
            let mut stmt = c.prepare_cached(
                "SELECT generation, generation = (SELECT max(generation) FROM instances n
                                                   WHERE n.project = i.project AND n.viewer = i.viewer)
                 FROM instances i WHERE state IN ('stopped', 'failed') AND updated_ms < ?1",
            )?;
            let rows: Vec<(i64, bool)> =
                stmt.query_map(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            let mut removed = 0;
            for (generation, newest) in &rows {
                c.prepare_cached("DELETE FROM history WHERE generation = ?1")?.execute(params![generation])?;
                c.prepare_cached("DELETE FROM pushes WHERE generation = ?1")?.execute(params![generation])?;
                if !newest {
                    c.prepare_cached("DELETE FROM instances WHERE generation = ?1")?.execute(params![generation])?;
                    removed += 1;
                }
            }
            Ok((rows.into_iter().map(|(g, _)| g).collect::<Vec<_>>(), removed))
        })
        .await;
    let (generations, removed) = match ended {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e.message, "upkeep: cannot prune ended instances");
            return (0, 0);
        }
    };
    let jobs_dir = m.jobs_dir.clone();
    let launcher = Arc::clone(&m.launcher);
    let files = tokio::task::spawn_blocking(move || {
        let with_files: Vec<i64> = generations
            .into_iter()
            .filter(|g| ["json", "log", "lock"].iter().any(|ext| jobs_dir.join(format!("g{g}.{ext}")).exists()))
            .collect();
        let probes = launcher.probe_all(&with_files);
        let mut count = 0;
        for (g, probe) in with_files.iter().zip(probes) {
            if matches!(probe, JobProbe::Running { .. } | JobProbe::Queued { .. }) {
                continue;
            }
            for ext in ["json", "log", "lock"] {
                let _ = std::fs::remove_file(jobs_dir.join(format!("g{g}.{ext}")));
            }
            count += 1;
        }
        count
    })
    .await
    .unwrap_or(0);
    if removed + files > 0 {
        tracing::info!(rows = removed, job_files = files, "upkeep: pruned ended instances past their retention");
    }
    (removed, files)
}

pub async fn run(m: Arc<Daemon>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        // Read each time: SIGHUP may change it.
        let retention = *m.timing.retention.get();
        tokio::select! {
            _ = tokio::time::sleep(every(retention)) => { prune_once(&m, retention).await; }
            _ = shutdown.changed() => return,
        }
    }
}
