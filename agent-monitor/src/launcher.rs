//! Starting, probing and cancelling `vruntask` jobs.
//!
//! agent-monitor sees the job system only through the [`Launcher`] trait. The default
//! [`ProcessLauncher`] runs `vruntask run <job file>` as a detached local process; with
//! fetch delivery it writes no job file and runs `vruntask run --from-agent-monitor <url>`
//! with the job token in the environment, exactly as a node without a shared filesystem
//! would (the Slurm launcher, [`slurm`], always does).
//!
//! Liveness without PIDs: before anything else, the launcher takes an exclusive lock on
//! `jobs/g<generation>.lock` and hands the locked descriptor to the child (its number in
//! `VRUN_JOB_LOCK_FD`), then closes its own copy. The lock is therefore held from before the
//! spawn until the job and everything that inherited the descriptor have exited. "Is the lock
//! held?" answers "is a job for this generation running?" across agent-monitor restarts,
//! with no PID-reuse races, and a second start of the same generation is impossible. The job
//! file is written only under that lock, so never while a job of its generation reads it.
//!
//! Cost: jobs are spawned with `posix_spawn` (no `pre_exec`, so std need not `fork` the whole
//! daemon for each job), in a process group of their own, and one waiter thread waits for all
//! of them (a thread per job cost ~16 KB each and made every later spawn slower).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use vrun_proto::job::JobSpec;

pub mod record;
pub mod slurm;

/// Environment variable naming the inherited lock descriptor.
pub const LOCK_FD_ENV: &str = "VRUN_JOB_LOCK_FD";
/// Environment variable carrying a fetching job's token (vruntask's `TOKEN_ENV`).
pub const TOKEN_ENV: &str = "VRUN_JOB_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot write job file {path}: {source}")]
    JobFile { path: PathBuf, source: std::io::Error },
    #[error("cannot start {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
}

/// What the job system says about a generation's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobProbe {
    /// Running, on `node` when the job system says where.
    Running { node: Option<String> },
    /// Never started (or, for a launcher that cannot tell, no longer running).
    NotRunning,
    /// Waiting in the job system's queue, for the reason given ("Resources"): not a job
    /// that failed to start, so its start lease begins when it runs.
    Queued { reason: String },
    /// The job system says it ended, and how ("NODE_FAIL", "TIMEOUT", ...).
    Ended { reason: String },
}

impl JobProbe {
    pub const RUNNING: JobProbe = JobProbe::Running { node: None };
}

pub trait Launcher: Send + Sync + 'static {
    /// Starts the job, if `still_current` (asked once the job's lock is held, just before
    /// the spawn) says its generation has not ended. Starting a generation whose job already
    /// runs does nothing. Returns the job system's id of the job, if it has one (stored with
    /// the instance).
    fn start(&self, spec: &JobSpec, still_current: &dyn Fn() -> bool) -> Result<Option<String>, LaunchError>;
    /// Whether the generation's job runs now.
    fn probe(&self, generation: i64) -> JobProbe;
    /// [`Launcher::probe`] for many generations at once. A batch system answers all of them
    /// from one query (one `squeue` per sweep, never one per job).
    fn probe_all(&self, generations: &[i64]) -> Vec<JobProbe> {
        generations.iter().map(|g| self.probe(*g)).collect()
    }
    /// Stops the generation's job: SIGTERM, then SIGKILL after `grace`. Blocks until done.
    fn cancel(&self, generation: i64, grace: Duration);
    /// Readies the hosts for jobs of `platform` before the first click needs them (for the
    /// local host: settle KVM or TCG, a probe of up to 8 s). Called once at start; never
    /// blocks.
    fn prepare_hosts(&self, _platform: &str) {}
}

pub struct ProcessLauncher {
    jobs_dir: PathBuf,
    command: PathBuf,
    /// The job fetches its description instead of reading a job file.
    fetch: bool,
    /// Keeps probes apart from starts, so a probe's momentary lock is never mistaken for a
    /// job by a start (which would then not start it). Starts share it: each starts its own
    /// generation, and a second start of one generation loses the file lock to the first.
    /// (Serialising starts made every launch wait for the previous job's fork and exec:
    /// about 20 job starts/s on a loaded machine, see docs/performance.md.)
    guard: RwLock<()>,
    /// Held around one spawn, the only moment a job lock descriptor is inheritable.
    spawn_window: Mutex<()>,
}

impl ProcessLauncher {
    pub fn new(jobs_dir: PathBuf, command: PathBuf) -> std::io::Result<ProcessLauncher> {
        std::fs::create_dir_all(&jobs_dir)?;
        Ok(ProcessLauncher { jobs_dir, command, fetch: false, guard: RwLock::new(()), spawn_window: Mutex::new(()) })
    }

    /// Jobs fetch their description over XML-RPC (`job_delivery = fetch`).
    pub fn fetching(mut self, fetch: bool) -> ProcessLauncher {
        self.fetch = fetch;
        self
    }

    pub fn job_file(&self, generation: i64) -> PathBuf {
        self.jobs_dir.join(format!("g{generation}.json"))
    }

    fn lock_file(&self, generation: i64) -> PathBuf {
        self.jobs_dir.join(format!("g{generation}.lock"))
    }

    fn open_lock(&self, generation: i64) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.lock_file(generation))
    }
}

impl Launcher for ProcessLauncher {
    fn start(&self, spec: &JobSpec, still_current: &dyn Fn() -> bool) -> Result<Option<String>, LaunchError> {
        let _shared = self.guard.read().unwrap_or_else(|p| p.into_inner());
        let job_file = self.job_file(spec.generation);
        let lock_file = self
            .open_lock(spec.generation)
            .map_err(|source| LaunchError::JobFile { path: self.lock_file(spec.generation), source })?;
        let mut lock = fd_lock::RwLock::new(lock_file);
        let Ok(held) = lock.try_write() else {
            tracing::info!(generation = spec.generation, "job already running; not starting another");
            return Ok(None);
        };
        // Asked again under the job lock: a cancel that came after the caller's check found
        // no job to stop, and the job would have started for a generation already failed
        // (issue 13). A cancel that comes now waits for this lock (see `cancel`).
        if !still_current() {
            tracing::info!(generation = spec.generation, "not starting the job of a generation that has ended");
            return Ok(None);
        }
        if !self.fetch {
            let json = serde_json::to_vec_pretty(spec).expect("job spec serialises");
            // Written under the job lock, so no job of this generation is reading it, and in
            // place: its one reader is the job spawned below. Not fsynced: an OS crash ends
            // that reader too.
            crate::private::write_private_in_place(&job_file, &json)
                .map_err(|source| LaunchError::JobFile { path: job_file.clone(), source })?;
        }
        let log_path = self.jobs_dir.join(format!("g{}.log", spec.generation));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|source| LaunchError::JobFile { path: log_path, source })?;
        let log2 = log.try_clone().map_err(|source| LaunchError::JobFile { path: job_file.clone(), source })?;
        let lock_fd = held.as_raw_fd();
        let mut cmd = std::process::Command::new(&self.command);
        cmd.arg("run");
        match (&spec.job_token, self.fetch) {
            // The token in the environment (the child's own, readable by root and itself
            // only), never in arguments, which every user can read in /proc.
            (Some(token), true) => cmd.arg("--from-agent-monitor").arg(&spec.agent_monitor_url).env(TOKEN_ENV, token),
            _ => cmd.arg(&job_file),
        };
        cmd.env(LOCK_FD_ENV, lock_fd.to_string()).stdin(std::process::Stdio::null()).stdout(log).stderr(log2);
        // Its own process group: signals for agent-monitor's group (a terminal's Ctrl-C, a
        // service manager's stop) do not reach the job, which must outlive the daemon.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = {
            // The only moment a job lock is inheritable; no other job may be spawned meanwhile
            // or it would inherit this lock too.
            let _window = self.spawn_window.lock().unwrap_or_else(|p| p.into_inner());
            set_cloexec(lock_fd, false).map_err(|source| LaunchError::Spawn { command: "fcntl".into(), source })?;
            let spawned = cmd.spawn();
            let _ = set_cloexec(lock_fd, true);
            spawned.map_err(|source| LaunchError::Spawn { command: self.command.display().to_string(), source })?
        };
        // Unlocking would release the child's lock too (same open file description): keep the
        // lock, just close our descriptor when `lock` drops.
        std::mem::forget(held);
        tracing::info!(generation = spec.generation, pid = child.id(), job = %job_file.display(), "job started");
        child_waiter::adopt(child);
        Ok(None)
    }

    /// `<job command> probe-accel` in the background, with the daemon's environment (the
    /// same `VRUN_ACCEL` and `VRUN_RUNTIME_DIR` its jobs get): the first View then finds the
    /// verdict cached. Output goes to `jobs/probe-accel.log`.
    fn prepare_hosts(&self, platform: &str) {
        let kernel = Path::new(platform).join("vmlinuz");
        if !kernel.is_file() {
            return;
        }
        let log_path = self.jobs_dir.join("probe-accel.log");
        let Ok(log) = OpenOptions::new().create(true).append(true).mode(0o600).open(&log_path) else { return };
        let mut cmd = std::process::Command::new(&self.command);
        cmd.arg("probe-accel")
            .arg("--kernel")
            .arg(&kernel)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // Under the spawn window like a job, so it never inherits a job's lock descriptor.
        let spawned = {
            let _window = self.spawn_window.lock().unwrap_or_else(|p| p.into_inner());
            cmd.spawn()
        };
        match spawned {
            Ok(child) => {
                tracing::info!(pid = child.id(), "accelerator probe started in the background");
                child_waiter::adopt(child);
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the accelerator probe; the first job probes"),
        }
    }

    fn probe(&self, generation: i64) -> JobProbe {
        let _exclusive = self.guard.write().unwrap_or_else(|p| p.into_inner());
        if !self.lock_file(generation).exists() {
            return JobProbe::NotRunning;
        }
        // A lock file that cannot be opened (EMFILE under a flood) says nothing about the
        // job: retry briefly, then answer Running, so that no running job is taken for gone.
        for _ in 0..10 {
            match self.open_lock(generation) {
                Ok(f) => {
                    let running = fd_lock::RwLock::new(f).try_write().is_err();
                    return if running { JobProbe::RUNNING } else { JobProbe::NotRunning };
                }
                Err(e) => {
                    tracing::warn!(generation, error = %e, "cannot open the job lock; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        JobProbe::RUNNING
    }

    fn cancel(&self, generation: i64, grace: Duration) {
        let lock = self.lock_file(generation);
        let mut signal = libc::SIGTERM;
        let deadline = std::time::Instant::now() + grace;
        let mut warned: Option<std::time::Instant> = None;
        loop {
            match holders(&lock) {
                Ok(holders) if !holders.is_empty() => {
                    if std::time::Instant::now() >= deadline {
                        signal = libc::SIGKILL;
                    }
                    for pid in &holders {
                        tracing::info!(generation, pid, signal, "cancelling job");
                        // SAFETY: plain kill(2) on a PID that holds this generation's job lock.
                        unsafe { libc::kill(*pid, signal) };
                    }
                }
                // No other process holds it: the job is gone, unless a start is between
                // taking the lock and spawning; it then holds the lock, so wait for it.
                Ok(_) if self.lock_is_free(generation) => return,
                Ok(_) => {}
                // Under EMFILE this used to read as "no holders", and the pair was freed
                // while its job ran on (issue 13): fail and retry instead.
                Err(e) => {
                    if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(generation, error = %e, "cannot read /proc to find the job; retrying the cancel");
                        warned = Some(std::time::Instant::now());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl ProcessLauncher {
    /// Whether no one holds the generation's job lock (taken and released at once).
    fn lock_is_free(&self, generation: i64) -> bool {
        match self.open_lock(generation) {
            Ok(f) => fd_lock::RwLock::new(f).try_write().is_ok(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

/// PIDs with an open descriptor on `lock` (the job and anything that inherited its lock).
/// Public for tests that look for a generation's job process.
pub fn lock_holders(lock: &Path) -> Vec<i32> {
    holders(lock).unwrap_or_default()
}

/// [`lock_holders`], or why `/proc` could not be read. A process that exits while it is
/// looked at is simply not a holder.
fn holders(lock: &Path) -> std::io::Result<Vec<i32>> {
    let target = match lock.canonicalize() {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(fds) => fds,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => {
                continue
            }
            Err(e) => return Err(e),
        };
        if fds.filter_map(|f| std::fs::read_link(f.ok()?.path()).ok()).any(|p| p == target) {
            found.push(pid);
        }
    }
    Ok(found)
}

fn set_cloexec(fd: i32, on: bool) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor this function's caller owns.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One thread waits for (`waitpid`) every job agent-monitor started, so none lingers as a
/// zombie. It waits for any child: jobs are nearly the daemon's only children, and the one
/// other (a platform check's launchviewer, [`crate::platforms`]) is judged by its output,
/// not its exit status, for that reason. Not called a reaper: in agent-monitor that is lease expiry (`crate::reaper`).
mod child_waiter {
    use std::sync::{Condvar, Mutex, OnceLock};

    struct Waiter {
        running: Mutex<usize>,
        more: Condvar,
    }

    fn waiter() -> &'static Waiter {
        static W: OnceLock<Waiter> = OnceLock::new();
        W.get_or_init(|| {
            let _ = std::thread::Builder::new().name("job-waiter".into()).spawn(wait_all);
            Waiter { running: Mutex::new(0), more: Condvar::new() }
        })
    }

    /// Hands a started job to the waiter (its `Child` handle is not needed any more).
    pub fn adopt(child: std::process::Child) {
        drop(child);
        let w = waiter();
        *w.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        w.more.notify_one();
    }

    fn wait_all() {
        let w = waiter();
        loop {
            {
                let mut n = w.running.lock().unwrap_or_else(|p| p.into_inner());
                while *n == 0 {
                    n = w.more.wait(n).unwrap_or_else(|p| p.into_inner());
                }
            }
            let mut status = 0;
            // SAFETY: waitpid for any child; jobs are the daemon's only children.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            let mut n = w.running.lock().unwrap_or_else(|p| p.into_inner());
            if pid > 0 {
                *n = n.saturating_sub(1);
            } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                *n = 0;
            }
        }
    }
}
