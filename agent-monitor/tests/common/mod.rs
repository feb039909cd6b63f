//! Test harness: the real agent-monitor (see `vrun-test-support`) with a real state
//! directory, and a stand-in job command that records each launch and then stays alive
//! holding the inherited job lock (as vruntask does), so that liveness checks see a running
//! job.
// Each test binary uses its own part of the harness.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vrun_test_support::Spawn;
pub use vrun_test_support::{eventually, eventually_or, sample_job, workspace_bin, AgentMonitor as Daemon};

pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let job = tmp.path().join("fake-job");
        std::fs::write(
            &job,
            "#!/bin/sh\n# $1 = run, $2 = job file. Record the launch, then live like a job.\n\
             echo \"$$ $2\" >> \"$VRUN_TEST_LAUNCH_LOG\"\nexec sleep 300\n",
        )
        .unwrap();
        std::fs::set_permissions(&job, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Env { tmp }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    pub fn launch_log(&self) -> PathBuf {
        self.tmp.path().join("launches.log")
    }

    /// (pid, job file) of every job started so far.
    pub fn launches(&self) -> Vec<(i32, PathBuf)> {
        vrun_test_support::launches(&self.launch_log())
    }

    /// Waits until at least `n` jobs were started (bounded), and returns them.
    pub fn wait_launches(&self, n: usize, within: Duration) -> Vec<(i32, PathBuf)> {
        let end = Instant::now() + within;
        loop {
            let l = self.launches();
            if l.len() >= n || Instant::now() > end {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn start(&self, extra: &[&str]) -> Daemon {
        start_daemon(&self.state_dir(), &self.tmp.path().join("fake-job"), &self.launch_log(), extra)
    }

    /// The daemon's own libvirt URI is `test:///default` unless `extra` names another.
    pub fn start_on(&self, uri: &str, extra: &[&str]) -> Daemon {
        let mut args = vec!["--libvirt-uri", uri];
        args.extend_from_slice(extra);
        self.start(&args)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (pid, _) in self.launches() {
            // SAFETY: plain kill(2) of the test's own job processes.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// agent-monitor on `state` with `job` as its job command and libvirt's test driver.
pub fn start_daemon(state: &Path, job: &Path, launch_log: &Path, extra: &[&str]) -> Daemon {
    start_daemon_via(&[], state, job, launch_log, extra)
}

/// [`start_daemon`] run through `wrapper` (for instance `prlimit --nofile=256 --`).
pub fn start_daemon_via(wrapper: &[&str], state: &Path, job: &Path, launch_log: &Path, extra: &[&str]) -> Daemon {
    Spawn::via(wrapper, state, job)
        .args(extra)
        .env("VRUN_TEST_LAUNCH_LOG", launch_log)
        .env("AGENT_MONITOR_LIBVIRT_URI", "test:///default")
        .start()
}

/// Reads the job description a launch was given.
pub fn job_spec(file: &Path) -> vrun_proto::job::JobSpec {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(true),
        Err(_) => false,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

pub fn pair(p: &str, v: &str) -> vrun_proto::Pair {
    vrun_proto::Pair::new(p, v).unwrap()
}

pub use vrun_test_support::Tmpfs;

/// `launchViewer` of `p` as the launcher role: (launched, generation).
pub fn launch(d: &Daemon, rt: &tokio::runtime::Runtime, p: &vrun_proto::Pair) -> (bool, i64) {
    let req = vrun_proto::methods::LaunchViewer::new(p.clone());
    let r = rt.block_on(d.client_as("launcher").launch_viewer(&req)).unwrap();
    (r.launched, r.generation)
}

/// The job of `generation` reports `stopped` (as vruntask does once the database is saved).
pub fn report_stopped(d: &Daemon, rt: &tokio::runtime::Runtime, p: &vrun_proto::Pair, generation: i64) {
    let report = vrun_proto::methods::SetViewerState {
        pair: p.clone(),
        generation,
        state: vrun_proto::ViewerState::Stopped,
        ipaddress: None,
        domain: None,
        message: Some("database saved".into()),
    };
    rt.block_on(d.client().set_viewer_state(&report)).unwrap();
}
