//! Test harness: the real agent-monitor on a loopback port, with `tests/host-job` as its job
//! command. host-job is a fast stand-in for vruntask: instead of booting a viewer VM it runs
//! the real `viewer` binary on the host and reports to agent-monitor exactly as vruntask
//! does (ready + address, heartbeats, stopped). So every launch, lock, claim and upload in
//! these tests is the real one; only the VM is missing.
//!
//! agent-monitor and viewer are taken from the target directory these tests were built
//! into (see `vrun-test-support`); `scripts/test` builds the whole workspace first.
// Each test binary uses its own part of the harness.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use vrun_test_support::free_port;
pub use vrun_test_support::viewer::{api_get, split_url};
use vrun_test_support::{workspace_bin, AgentMonitor, Spawn};

/// How the stand-in job behaves (host-job's HOSTJOB_MODE).
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Normal,
    /// Never reports ready.
    Sleep,
    /// Gives the viewer another API key than the one agent-monitor hands out.
    BadKey,
    /// Reports ready 1.5 s before the viewer listens.
    Early,
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub daemon: AgentMonitor,
    pub url: String,
}

impl Env {
    pub fn start(mode: Mode) -> Env {
        Env::start_with(mode, &[], &[])
    }

    /// `extra`: more agent-monitor flags; `vars`: more environment for it and its jobs.
    pub fn start_with(mode: Mode, extra: &[&str], vars: &[(&str, &str)]) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/host-job");
        let mode = match mode {
            Mode::Normal => "normal",
            Mode::Sleep => "sleep",
            Mode::BadKey => "badkey",
            Mode::Early => "early",
        };
        // `vars` last: a test may replace any of these (HOSTJOB_VIEWER, for one).
        let daemon = Spawn::new(&state, &job)
            .args(extra)
            .env("VRUN_TEST_LAUNCH_LOG", tmp.path().join("launches.log"))
            .env("HOSTJOB_VIEWER", workspace_bin("viewer"))
            .env("HOSTJOB_WORK", &work)
            .env("HOSTJOB_MODE", mode)
            .envs(vars.iter().copied())
            .start();
        let url = daemon.url.clone();
        Env { tmp, daemon, url }
    }

    pub fn daemon_log(&self) -> String {
        self.daemon.log()
    }

    /// (pid, job file) of every host-job started so far.
    pub fn launches(&self) -> Vec<(i32, PathBuf)> {
        vrun_test_support::launches(&self.tmp.path().join("launches.log"))
    }

    /// Jobs agent-monitor says it started. It spawns them after answering launchViewer,
    /// so a job may not have written its own launch line yet.
    fn jobs_started(&self) -> usize {
        self.daemon_log().matches("job started").count()
    }

    /// Waits (bounded) until every started job has recorded itself; returns the launches.
    pub fn settled_launches(&self) -> Vec<(i32, PathBuf)> {
        self.launches_at_least(0)
    }

    /// Like [`Env::settled_launches`], also waiting (bounded) for `min` of them.
    fn launches_at_least(&self, min: usize) -> Vec<(i32, PathBuf)> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.launches();
            if (l.len() >= min && l.len() >= self.jobs_started()) || Instant::now() > end {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The job description of the only launch so far.
    pub fn only_job(&self) -> serde_json::Value {
        let l = self.launches_at_least(1);
        assert_eq!(l.len(), 1, "expected exactly one launch, got {l:?}");
        serde_json::from_slice(&std::fs::read(&l[0].1).unwrap()).unwrap()
    }

    /// Completed imports the viewer of `generation` logged (one per accepted upload).
    pub fn imports(&self, generation: i64) -> usize {
        let log = self.tmp.path().join(format!("work/g{generation}/viewer.log"));
        std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains(" imported ")).count()
    }

    /// Runs launchviewer against this agent-monitor.
    pub fn launchviewer(&self, args: &[&str]) -> Run {
        Run::from_output(command(&self.url, &self.secret("launcher"), args).output().expect("run launchviewer"))
    }

    /// A role's secret file, written by agent-monitor at its first start.
    pub fn secret(&self, role: &str) -> PathBuf {
        self.daemon.secret(role)
    }

    pub fn client(&self, role: &str) -> vrun_proto::client::AgentMonitorClient {
        self.daemon.client_as(role)
    }

    pub fn spawn_launchviewer(&self, args: &[&str]) -> Child {
        command(&self.url, &self.secret("launcher"), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn launchviewer")
    }

    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // No new jobs once the daemon is gone; then each job leads a process group of its own
        // (agent-monitor starts it so) with its viewer in it: one kill takes both.
        self.daemon.kill();
        for (pid, _) in self.settled_launches() {
            // SAFETY: plain kill(2) of process groups this test's daemon started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

fn command(url: &str, secret: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_launchviewer"));
    c.args(args)
        .args(["--agent-monitor", url, "--secret-file"])
        .arg(secret)
        .env_remove("AGENT_MONITOR_URL")
        .env_remove("AGENT_MONITOR_SECRET_FILE")
        .stdin(Stdio::null());
    c
}

/// A secret file for runs against an agent-monitor that is not there.
fn dummy_secret() -> PathBuf {
    let p = std::env::temp_dir().join("launchviewer-test-dummy.secret");
    std::fs::write(&p, "not-a-real-secret\n").unwrap();
    p
}

/// What one launchviewer run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run {
            stdout: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().expect("launchviewer exited normally"),
        }
    }

    /// The one stdout line (the contract allows no other).
    pub fn line(&self) -> &str {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected exactly one stdout line: {self:?}");
        lines[0]
    }

    /// The URL of a `READY <url>` line, after checking it and the exit code.
    pub fn ready_url(&self) -> String {
        let url = self.line().strip_prefix("READY ").unwrap_or_else(|| panic!("not READY: {self:?}"));
        assert_eq!(self.code, 0, "{self:?}");
        url.to_owned()
    }
}

pub fn launchviewer(url: &str, args: &[&str]) -> Run {
    Run::from_output(command(url, &dummy_secret(), args).output().expect("run launchviewer"))
}

pub fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/sample.sarif").to_str().unwrap().to_owned()
}

/// Asks agent-monitor to stop the pair's viewer (what an administrator's Stop does).
pub fn abort(env: &Env, project: &str, viewer: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = env.client("admin");
    let pair = vrun_proto::Pair::new(project, viewer).unwrap();
    rt.block_on(client.abort_viewer(&pair)).unwrap()
}

/// Asks agent-monitor for the pair's availability (what launchviewer itself sees).
pub fn availability(env: &Env, project: &str, viewer: &str) -> vrun_proto::methods::Availability {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = env.client("launcher");
    let pair = vrun_proto::Pair::new(project, viewer).unwrap();
    rt.block_on(client.is_viewer_available(&pair)).unwrap()
}
