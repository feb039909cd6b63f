//! Output disks a job could not store: `jobs/g<N>.unstored`.
//!
//! A job whose `storeviewer` kept failing (a full disk here, agent-monitor away longer than
//! its retries) moves its output disk there instead of deleting it with its work directory
//! (vruntask's `Reporter::keep_unstored`). Each sweep stores what it finds, as any other
//! version of the pair (an older generation's as an older version), and removes the file
//! once the archive is committed. A disk that holds no valid database is renamed
//! `g<N>.unstored.corrupt` for the admin, never deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archives;
use crate::daemon::Daemon;
use crate::instances;
use crate::store::now_ms;

/// `(generation, path)` of every unstored disk in `jobs_dir`.
fn found(jobs_dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(jobs_dir) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let generation = name.strip_prefix('g')?.strip_suffix(".unstored")?.parse().ok()?;
            Some((generation, e.path()))
        })
        .collect()
}

/// Stores every unstored disk it can; what fails stays for the next sweep.
pub async fn store_all(m: &Arc<Daemon>) {
    for (generation, path) in found(&m.jobs_dir) {
        let Ok(Some(inst)) = m.store.read(move |c| instances::by_generation(c, generation)).await else {
            tracing::warn!(generation, path = %path.display(), "unstored output disk of an unknown generation; left for the admin");
            continue;
        };
        let file = path.clone();
        let saved = match tokio::task::spawn_blocking(move || vrun_proto::outdisk::read_saved(&file)).await {
            Ok(Ok(Some(saved))) => saved,
            Ok(other) => {
                let why = match other {
                    Err(e) => e,
                    _ => "it holds no saved database".to_string(),
                };
                let mut to = path.clone().into_os_string();
                to.push(".corrupt");
                let _ = std::fs::rename(&path, &to);
                tracing::error!(generation, path = %PathBuf::from(&to).display(), reason = %why, "unstored output disk is not usable");
                continue;
            }
            Err(_) => continue,
        };
        let (size, sha) = (saved.bytes.len(), saved.sha256.clone());
        match archives::keep(&m.store, &m.archives, &inst.pair, generation, &saved.sha256, saved.bytes).await {
            Ok(()) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stored output disk");
                }
                let note = format!(
                    "its database ({size} bytes, sha256 {sha}), which the job could not store, was stored by the sweep"
                );
                tracing::warn!(pair = %inst.pair, generation, %note, "sweep: stored an unstored database");
                let _ = m.store.write(move |c| instances::note(c, &inst, &note, now_ms())).await;
            }
            Err(e) => {
                tracing::warn!(generation, error = %e, "cannot store an unstored output disk yet; the next sweep retries")
            }
        }
    }
}
