//! vruntask: one job per viewer run, on a hypervisor.
//!
//! `vruntask run <job file>` builds the VM's disks, boots it through libvirt, watches its
//! serial events and reports states to agent-monitor (fenced by the job's generation),
//! heartbeats while the VM lives, and on every shutdown path saves the viewer database back
//! to agent-monitor before it undefines the domain and removes its files.
//!
//! # Layout
//! - [`jobfile`]: reading and checking the job description; exit codes.
//! - [`fetch`]: the description, restore database and platform check for a node that
//!   shares no filesystem with agent-monitor.
//! - [`hypervisor`]: the `Hypervisor` trait and its libvirt implementation.
//! - [`domain_xml`]: the domain definition. [`accel`]: KVM or TCG.
//! - [`disks`]: configuration and output disks. [`serial`]: guest event lines.
//! - [`hvcall`]: every libvirt call off the async tasks, with a deadline.
//! - [`workdir`]: the private work directory. [`report`]: agent-monitor calls.
//! - [`heartbeat`]: heartbeats and stop requests (agent-monitor, SIGTERM) on tasks of
//!   their own, from the job's start to its final report.
//! - [`runner`]: the start of a run, to the VM running; [`watch`]: watching it and the
//!   teardown every run ends in.
//! - [`joblock`]: the run's lock on its node (how a DomainMonitor knows the job lives) and
//!   the node's name.
//! - [`domain_monitor`]: `vruntask domain-monitor`, one per hypervisor node: salvages the
//!   domains whose job is gone and reports the node's domains to agent-monitor.

pub mod accel;
pub mod disks;
pub mod domain_monitor;
pub mod domain_xml;
pub mod fetch;
pub mod heartbeat;
pub mod hvcall;
pub mod hypervisor;
pub mod jobfile;
pub mod joblock;
pub mod report;
pub mod runner;
pub mod serial;
pub mod watch;
pub mod workdir;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vrun_proto::ViewerState;

pub use accel::Accel;

/// Exit codes (documented in docs/vruntask.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// The viewer ran and stopped cleanly; its database was stored.
    Stopped = 0,
    /// The run failed; agent-monitor was told why (when it could be reached).
    Failed = 1,
    /// The job file is missing, malformed or invalid.
    BadJob = 2,
    /// The hypervisor could not be reached.
    NoHypervisor = 3,
}

/// Environment variable carrying a fetched job's token (never an argument: arguments are
/// world-readable in /proc and in Slurm's job records).
pub const TOKEN_ENV: &str = "VRUN_JOB_TOKEN";

/// How the viewer is reached from outside the VM.
#[derive(Debug, Clone)]
pub enum NetMode {
    Loopback,
    Bridge(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub uri: String,
    pub work_root: PathBuf,
    pub network: NetMode,
    pub guest_port: u16,
    pub boot_timeout: Duration,
    pub stop_timeout: Duration,
    pub accel: accel::Choice,
    /// Where the accelerator verdict is cached.
    pub runtime_dir: PathBuf,
    /// Deadline of each libvirt call.
    pub libvirt_timeout: Duration,
    /// How much longer cleanup waits for a libvirt call that outlived its deadline before
    /// it removes the domain that call may still create.
    pub cleanup_patience: Duration,
    /// The node's platform images, by name (`--image-dir`); `None`: the job's own path.
    pub image_dir: Option<PathBuf>,
    /// The address the forward binds and the job reports in loopback-forward mode
    /// (`--advertise-address`, default 127.0.0.1).
    pub advertise: std::net::Ipv4Addr,
    /// This node's name, written into the domain's metadata ([`joblock::node_name`]).
    pub node: String,
}

/// Where the job description comes from.
#[derive(Debug, Clone)]
pub enum JobSource {
    /// A file agent-monitor wrote (one host).
    File(PathBuf),
    /// Fetched from agent-monitor at `url` with the job's token (no shared filesystem).
    Fetch { url: String, token: String },
}

/// A future boxed in this library, for `main` to block on. An `async fn` first polled by
/// the binary was compiled again, whole, into it (the binary took twice the library's
/// build time).
pub type Task<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// Runs the job to the end.
pub fn run(source: JobSource, opts: Options) -> Task<Exit> {
    Box::pin(async move { run_job(&source, opts).await })
}

async fn run_job(source: &JobSource, opts: Options) -> Exit {
    let job = match source {
        JobSource::File(job_file) => match jobfile::load(job_file) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("vruntask: {e}");
                jobfile::report_unusable(job_file, &e).await;
                return Exit::BadJob;
            }
        },
        JobSource::Fetch { url, token } => match fetch::job(url, token).await {
            Ok(j) => j,
            Err(e) => {
                eprintln!("vruntask: {e}");
                jobfile::report_unfetchable(url, token, &e).await;
                return Exit::BadJob;
            }
        },
    };
    let pair = job.pair().expect("validated by jobfile::load");
    let rep = match report::Reporter::new(&job.agent_monitor_url, job.job_token.clone(), pair.clone(), job.generation) {
        // A fetched job has no state directory beside it to leave an unstored disk in.
        Ok(r) => match source {
            JobSource::File(job_file) => Arc::new(r.with_unstored(job_file.with_extension("unstored"))),
            JobSource::Fetch { .. } => Arc::new(r),
        },
        Err(e) => {
            eprintln!("vruntask: {e}");
            return Exit::BadJob;
        }
    };
    // From here to the final report the job heartbeats, whatever else it waits for.
    let (_beater, stop) = heartbeat::start(Arc::clone(&rep), Duration::from_secs(job.heartbeat_secs.max(1)));
    tracing::info!(pair = %pair, generation = job.generation, "viewer run starting");
    let uri = opts.uri.clone();
    let connecting = tokio::task::spawn_blocking(move || hypervisor::Libvirt::connect(&uri));
    let hv: Arc<dyn hypervisor::Hypervisor> = match tokio::time::timeout(opts.libvirt_timeout, connecting).await {
        Ok(Ok(Ok(h))) => Arc::new(h),
        outcome => {
            let reason = match outcome {
                Err(_) => format!("libvirt did not answer connect within {} s", opts.libvirt_timeout.as_secs()),
                Ok(Ok(Err(e))) => format!("cannot connect to {}: {e}", opts.uri),
                Ok(_) => format!("cannot connect to {}", opts.uri),
            };
            eprintln!("vruntask: {reason}");
            let _ = rep.state(ViewerState::Failed, None, None, Some(reason)).await;
            return Exit::NoHypervisor;
        }
    };
    let hv = hvcall::Hv::new(hv, opts.libvirt_timeout);
    runner::run(job, pair, &opts, hv, rep, stop).await
}

/// `vruntask probe-accel`: settles KVM or TCG for this host boot, outside any click.
pub fn probe_accel(choice: accel::Choice, runtime_dir: &Path, kernel: &Path) -> Accel {
    let a = accel::choose(choice, runtime_dir, Some(kernel));
    eprintln!("vruntask: accelerator for this host boot: {}", if a == Accel::Kvm { "kvm" } else { "tcg" });
    a
}

/// Runs `f` on a blocking thread (file and process work must not hold up the runtime).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking step panicked")
}
