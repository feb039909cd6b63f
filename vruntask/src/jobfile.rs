//! The job description file written by agent-monitor.

use std::os::fd::RawFd;
use std::path::Path;

use vrun_proto::job::JobSpec;
use vrun_proto::ViewerState;

/// Largest job file read (they are a few hundred bytes).
const MAX_JOB_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read job file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("job file {path} is larger than {MAX_JOB_BYTES} bytes")]
    TooLarge { path: String },
    #[error("job file {path} is not a valid job description: {detail}")]
    Invalid { path: String, detail: String },
}

pub fn load(path: &Path) -> Result<JobSpec, JobError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| JobError::Read { path: p.clone(), source })?;
    if meta.len() > MAX_JOB_BYTES {
        return Err(JobError::TooLarge { path: p });
    }
    let bytes = std::fs::read(path).map_err(|source| JobError::Read { path: p.clone(), source })?;
    let job: JobSpec =
        serde_json::from_slice(&bytes).map_err(|e| JobError::Invalid { path: p.clone(), detail: e.to_string() })?;
    job.validate().map_err(|detail| JobError::Invalid { path: p, detail })?;
    Ok(job)
}

/// When a job file is unusable but still names where to report and for whom, tell
/// agent-monitor, so the pair is freed now instead of when the lease runs out.
pub async fn report_unusable(path: &Path, err: &JobError) {
    let Ok(bytes) = std::fs::read(path) else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return };
    let (Some(url), Some(project), Some(viewer), Some(generation)) =
        (v["agent_monitor_url"].as_str(), v["project"].as_str(), v["viewer"].as_str(), v["generation"].as_i64())
    else {
        return;
    };
    let Ok(pair) = vrun_proto::Pair::new(project, viewer) else { return };
    let token = v["job_token"].as_str().map(String::from);
    if let Ok(rep) = crate::report::Reporter::new(url, token, pair, generation) {
        let _ = rep.state(ViewerState::Failed, None, None, Some(format!("vruntask refused its job: {err}"))).await;
    }
}

/// agent-monitor hands the job a locked descriptor proving the job is alive. Keep it for
/// ourselves: children (qemu-img) must not inherit it and outlive us holding it.
pub fn keep_lock_fd_private() {
    let Some(fd) = std::env::var("VRUN_JOB_LOCK_FD").ok().and_then(|v| v.parse::<RawFd>().ok()) else { return };
    // SAFETY: fcntl on a descriptor number we were told we own; a bad number just fails.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}
