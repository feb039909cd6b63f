//! Test harness: the real agent-monitor binary on a loopback port, a real state directory,
//! and a stand-in job command that records each launch and then stays alive holding the
//! inherited job lock (as vruntask does), so that liveness checks see a running job.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vrun_proto::client::{AgentMonitorClient, Credentials};

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub stderr_log: PathBuf,
}

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
        std::fs::read_to_string(self.launch_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (pid, file) = l.split_once(' ')?;
                Some((pid.parse().ok()?, PathBuf::from(file)))
            })
            .collect()
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn start_daemon(state: &Path, job: &Path, launch_log: &Path, extra: &[&str]) -> Daemon {
    start_daemon_via(&[], state, job, launch_log, extra)
}

/// [`start_daemon`] run through `wrapper` (for instance `prlimit --nofile=256 --`).
pub fn start_daemon_via(wrapper: &[&str], state: &Path, job: &Path, launch_log: &Path, extra: &[&str]) -> Daemon {
    let port = free_port();
    let stderr_log = state.with_extension(format!("{port}.log"));
    let err = std::fs::File::create(&stderr_log).unwrap();
    let bin = env!("CARGO_BIN_EXE_agent-monitor");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let child = cmd
        .args(["serve", "--state-dir"])
        .arg(state)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--job-command"])
        .arg(job)
        .args(extra)
        .env("VRUN_TEST_LAUNCH_LOG", launch_log)
        .env("AGENT_MONITOR_LIBVIRT_URI", "test:///default")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn agent-monitor");
    let d = Daemon { child, url: format!("http://127.0.0.1:{port}/RPC2"), dir: state.into(), stderr_log };
    d.wait_serving();
    d
}

impl Daemon {
    /// A client with the admin role.
    pub fn client(&self) -> AgentMonitorClient {
        self.client_as("admin")
    }

    pub fn client_as(&self, role: &str) -> AgentMonitorClient {
        AgentMonitorClient::new(&self.url, self.creds(role)).unwrap()
    }

    pub fn creds(&self, role: &str) -> Credentials {
        Credentials::from_secret_file(role, &self.dir.join(format!("secrets/{role}.secret"))).unwrap()
    }

    fn wait_serving(&self) {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
            if log.contains("serving XML-RPC") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent-monitor did not start serving:\n{}", std::fs::read_to_string(&self.stderr_log).unwrap_or_default());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// First line of a file (used to read the daemon's own lines from a log).
pub fn first_line(path: &Path) -> String {
    BufReader::new(std::fs::File::open(path).unwrap()).lines().next().unwrap_or(Ok(String::new())).unwrap()
}

/// A binary of this workspace, built next to the test binaries (scripts/test builds all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_agent-monitor")).with_file_name(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` first", p.display());
    p
}

/// Waits (bounded) until `f` holds.
pub fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small tmpfs mounted at a directory for full-disk tests; unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(dir).status().unwrap();
        assert!(st.success(), "mount tmpfs at {} (these tests run as root)", dir.display());
        Tmpfs(dir.into())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon killed a moment ago may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
