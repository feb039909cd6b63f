//! The recording launcher (`launcher = record`): **for benchmarks and tests only**. It spawns
//! nothing. Each start and cancel is appended as one line (`start <generation>` /
//! `cancel <generation>`) to `jobs/recorded-jobs.log` under the state directory, with one
//! `write(2)` on an `O_APPEND` descriptor, so the record survives the daemon's restarts and
//! `kill -9` (not a power loss: it is not fsynced). At construction the file is read back,
//! so after a restart [`Launcher::probe`] still says `Running` for every recorded job that
//! was not cancelled, and start-up repair adopts them like real jobs.
//!
//! What it is for: holding 100,000 live instances with "running" jobs (the scale row of
//! `scripts/bench`) without 100,000 processes. Everything else (locks, the store, leases,
//! the live map, the reaper) is the daemon's normal path.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use vrun_proto::job::JobSpec;

use super::{JobProbe, LaunchError, Launcher};

/// The record's file name in the jobs directory.
pub const RECORD_FILE: &str = "recorded-jobs.log";

pub struct RecordLauncher {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// Generations started and not cancelled.
    running: HashSet<i64>,
}

impl RecordLauncher {
    /// Opens (creating) `<jobs_dir>/recorded-jobs.log` and reads back what it recorded.
    pub fn new(jobs_dir: &Path) -> std::io::Result<RecordLauncher> {
        std::fs::create_dir_all(jobs_dir)?;
        let path = jobs_dir.join(RECORD_FILE);
        let file = OpenOptions::new().create(true).append(true).read(true).mode(0o600).open(&path)?;
        let running = read_record(&path)?;
        Ok(RecordLauncher { path, inner: Mutex::new(Inner { file, running }) })
    }

    fn append(&self, inner: &mut Inner, what: &str, generation: i64) -> std::io::Result<()> {
        // One write per line on an O_APPEND descriptor: a line is never torn by another.
        inner.file.write_all(format!("{what} {generation}\n").as_bytes())
    }
}

/// Generations started and not cancelled, from the record at `path`.
pub fn read_record(path: &Path) -> std::io::Result<HashSet<i64>> {
    let mut running = HashSet::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(running),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        let line = line?;
        match line.split_once(' ').map(|(w, g)| (w, g.parse::<i64>())) {
            Some(("start", Ok(g))) => {
                running.insert(g);
            }
            Some(("cancel", Ok(g))) => {
                running.remove(&g);
            }
            // A line cut short by a crash mid-write: ignore it.
            _ => {}
        }
    }
    Ok(running)
}

impl Launcher for RecordLauncher {
    fn start(&self, spec: &JobSpec, still_current: &dyn Fn() -> bool) -> Result<Option<String>, LaunchError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.running.contains(&spec.generation) || !still_current() {
            return Ok(None);
        }
        self.append(&mut inner, "start", spec.generation)
            .map_err(|source| LaunchError::JobFile { path: self.path.clone(), source })?;
        inner.running.insert(spec.generation);
        Ok(None)
    }

    fn probe(&self, generation: i64) -> JobProbe {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.running.contains(&generation) {
            JobProbe::RUNNING
        } else {
            JobProbe::NotRunning
        }
    }

    fn probe_all(&self, generations: &[i64]) -> Vec<JobProbe> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        generations
            .iter()
            .map(|g| if inner.running.contains(g) { JobProbe::RUNNING } else { JobProbe::NotRunning })
            .collect()
    }

    fn cancel(&self, generation: i64, _grace: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.running.remove(&generation) {
            if let Err(e) = self.append(&mut inner, "cancel", generation) {
                tracing::warn!(generation, error = %e, "cannot record a cancel");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(generation: i64) -> JobSpec {
        vrun_test_support::sample_job("p", generation)
    }

    #[test]
    fn records_starts_and_cancels_across_a_restart_and_spawns_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let l = RecordLauncher::new(dir.path()).unwrap();
        for g in 1..=3 {
            l.start(&spec(g), &|| true).unwrap();
        }
        l.start(&spec(4), &|| false).unwrap();
        l.start(&spec(2), &|| true).unwrap();
        l.cancel(3, Duration::ZERO);
        assert_eq!(
            l.probe_all(&[1, 2, 3, 4]),
            [JobProbe::RUNNING, JobProbe::RUNNING, JobProbe::NotRunning, JobProbe::NotRunning]
        );
        drop(l);
        let text = std::fs::read_to_string(dir.path().join(RECORD_FILE)).unwrap();
        assert_eq!(text, "start 1\nstart 2\nstart 3\ncancel 3\n", "each start once, the cancel, nothing for 4");
        // After a restart the record says the same; the job files a real start writes are absent.
        let again = RecordLauncher::new(dir.path()).unwrap();
        assert_eq!(again.probe(1), JobProbe::RUNNING);
        assert_eq!(again.probe(3), JobProbe::NotRunning);
        assert!(!dir.path().join("g1.json").exists() && !dir.path().join("g1.lock").exists());
    }
}
