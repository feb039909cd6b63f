//! vruntask: one job per viewer run, on a hypervisor.
//!
//! `vruntask run <job file>` builds the VM's disks, boots it through libvirt, watches its
//! serial events and reports states to agent-monitor (fenced by the job's generation),
//! heartbeats while the VM lives, and on every shutdown path saves the viewer database back
//! to agent-monitor before it undefines the domain and removes its files.
//!
//! # Layout
//! - [`jobfile`]: reading and checking the job description; exit codes.
//! - [`hypervisor`]: the `Hypervisor` trait and its libvirt implementation.
//! - [`domain_xml`]: the domain definition. [`accel`]: KVM or TCG.
//! - [`disks`]: configuration and output disks. [`serial`]: guest event lines.
//! - [`workdir`]: the private work directory. [`report`]: agent-monitor calls.
//! - [`runner`]: the run itself, from disks to teardown.

pub mod accel;
pub mod disks;
pub mod domain_xml;
pub mod hypervisor;
pub mod jobfile;
pub mod report;
pub mod runner;
pub mod serial;
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
    pub accel: Accel,
}

/// Runs the job in `job_file` to the end.
pub async fn run(job_file: &Path, opts: Options) -> Exit {
    let job = match jobfile::load(job_file) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("vruntask: {e}");
            jobfile::report_unusable(job_file, &e).await;
            return Exit::BadJob;
        }
    };
    let pair = job.pair().expect("validated by jobfile::load");
    let rep = match report::Reporter::new(&job.agent_monitor_url, job.job_token.clone(), pair.clone(), job.generation) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vruntask: {e}");
            return Exit::BadJob;
        }
    };
    let hv: Arc<dyn hypervisor::Hypervisor> = match hypervisor::Libvirt::connect(&opts.uri) {
        Ok(h) => Arc::new(h),
        Err(e) => {
            let reason = format!("cannot connect to {}: {e}", opts.uri);
            eprintln!("vruntask: {reason}");
            let _ = rep.state(ViewerState::Failed, None, None, Some(reason)).await;
            return Exit::NoHypervisor;
        }
    };
    tracing::info!(pair = %pair, generation = job.generation, "viewer run starting");
    runner::run(job, pair, &opts, hv, rep).await
}
