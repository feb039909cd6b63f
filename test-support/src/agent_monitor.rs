//! A real agent-monitor process: `serve` on a fresh loopback port with a chosen state
//! directory and job command, its stderr in `<state dir>.<port>.log` (one log per start, so
//! a restarted daemon's log holds only its own lines); ready once it logs that it serves.
//! Dropping the handle kills it (the jobs it started are the owner's to clean up: which
//! jobs, and how to find them, depends on the stand-in).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, Credentials};

use crate::{free_port, workspace_bin};

/// How long agent-monitor may take to start serving (a loaded machine, a slow disk).
const START_PATIENCE: Duration = Duration::from_secs(30);

/// An agent-monitor about to be started; add flags and environment, then [`Spawn::start`].
pub struct Spawn {
    cmd: Command,
    port: u16,
    state_dir: PathBuf,
    log_path: PathBuf,
}

impl Spawn {
    /// `serve --state-dir <state_dir> --listen 127.0.0.1:<free port> --job-command <job>`,
    /// logging at `info`.
    pub fn new(state_dir: &Path, job_command: &Path) -> Spawn {
        Spawn::via(&[], state_dir, job_command)
    }

    /// [`Spawn::new`] run through `wrapper`, e.g. `["prlimit", "--nofile=256:256", "--"]` or
    /// `["sh", "-c", "umask 022; exec \"$@\"", "sh"]`.
    pub fn via(wrapper: &[&str], state_dir: &Path, job_command: &Path) -> Spawn {
        let port = free_port();
        let bin = workspace_bin("agent-monitor");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--state-dir"])
            .arg(state_dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--job-command"])
            .arg(job_command)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let log_path = state_dir.with_extension(format!("{port}.log"));
        Spawn { cmd, port, state_dir: state_dir.into(), log_path }
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Spawn {
        self.cmd.args(args);
        self
    }

    /// Environment for agent-monitor and, through it, its jobs.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Spawn {
        self.cmd.envs(vars);
        self
    }

    /// Starts it and waits (bounded) until it serves; panics with its log otherwise.
    pub fn start(mut self) -> AgentMonitor {
        let log = std::fs::File::create(&self.log_path).expect("create the agent-monitor log");
        let child = self.cmd.stderr(log).spawn().expect("spawn agent-monitor");
        let am = AgentMonitor {
            child,
            url: format!("http://127.0.0.1:{}/RPC2", self.port),
            state_dir: self.state_dir,
            log_path: self.log_path,
        };
        let end = Instant::now() + START_PATIENCE;
        while !am.log().contains("serving XML-RPC") {
            assert!(Instant::now() < end, "agent-monitor did not start serving:\n{}", am.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        am
    }
}

/// A running agent-monitor.
pub struct AgentMonitor {
    pub child: Child,
    /// `http://127.0.0.1:<port>/RPC2`
    pub url: String,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
}

impl AgentMonitor {
    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A role's secret file, written at its first start.
    pub fn secret(&self, role: &str) -> PathBuf {
        self.state_dir.join(format!("secrets/{role}.secret"))
    }

    pub fn creds(&self, role: &str) -> Credentials {
        Credentials::from_secret_file(role, &self.secret(role)).unwrap()
    }

    /// A client with the admin role.
    pub fn client(&self) -> AgentMonitorClient {
        self.client_as("admin")
    }

    /// A client with `role`'s secret.
    pub fn client_as(&self, role: &str) -> AgentMonitorClient {
        AgentMonitorClient::new(&self.url, self.creds(role)).unwrap()
    }

    /// Kills it and reaps it; harmless when it is already gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        self.kill();
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "agent-monitor ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentMonitor {
    fn drop(&mut self) {
        self.kill();
    }
}
