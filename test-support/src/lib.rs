//! What every vrun test suite needs to run the real programs: the workspace's binaries, a
//! real agent-monitor on a loopback port ([`AgentMonitor`]), the launches its stand-in jobs
//! record, bounded waits, and the viewer's HTTP API. Dev-only: a dev-dependency of the
//! suites, never of a program.
//!
//! # Layout
//! - [`agent_monitor`]: starting agent-monitor and talking to it.
//! - [`viewer`]: GETs against a viewer, and taking its URLs apart.
//! - [`slurm`]: a throwaway Slurm cluster on this host.
//! - here: binaries, ports, launch records and waits.

pub mod agent_monitor;
pub mod slurm;
pub mod viewer;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use agent_monitor::{AgentMonitor, Spawn};

/// `target/debug` (or whichever profile): a test binary lives in its `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_owned()
}

/// A workspace binary next to this test's build, or a panic saying how to get it. Taken
/// from the target directory rather than through dependencies: a dependency's binaries are
/// not built for its dependents.
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "{} is missing: run `cargo build --workspace` first (scripts/test does)", p.display());
    p
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// (pid, job file) of every job that recorded itself in `log`: stand-in jobs append
/// `<pid> <job file>` to `$VRUN_TEST_LAUNCH_LOG` when they start.
pub fn launches(log: &Path) -> Vec<(i32, PathBuf)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, file) = l.split_once(' ')?;
            Some((pid.parse().ok()?, PathBuf::from(file)))
        })
        .collect()
}

/// Waits (bounded) until `f` holds.
pub fn eventually(what: &str, within: Duration, f: impl FnMut() -> bool) {
    eventually_or(what, within, f, String::new)
}

/// [`eventually`], and on timeout the failure also shows `context()` (a daemon's log, the
/// last error seen), which is what tells a flake's cause from CI's output alone.
pub fn eventually_or(what: &str, within: Duration, mut f: impl FnMut() -> bool, context: impl Fn() -> String) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tmpfs of `size` mounted at a directory for as long as this lives: a small disk that
/// fills up for real (the suites that use it run as root).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs at {} (these tests run as root)", dir.display());
        Tmpfs(dir.into())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process killed a moment ago may still hold a file open there.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// One line of a long test's progress on stderr, with the seconds since `started`.
pub fn log_step(started: Instant, what: &str) {
    eprintln!("[{:6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// A job description for starting a launcher directly (no daemon): generation `generation`
/// of `<project>.CodeDX`, with no results, database or user.
pub fn sample_job(project: &str, generation: i64) -> vrun_proto::job::JobSpec {
    vrun_proto::job::JobSpec {
        version: vrun_proto::job::JOB_VERSION,
        execrunid: format!("vrun.{project}.CodeDX"),
        monitor_id: "0123456789ab".into(),
        intent: "VRUN".into(),
        project: project.into(),
        viewer: "CodeDX".into(),
        generation,
        viewer_uuid: None,
        resultsfolder: None,
        db_path: None,
        user: None,
        users: Vec::new(),
        apikey: "ab".repeat(32),
        urluuid: "proxy-0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        platform: "/img".into(),
        platform_name: None,
        platform_sha256: None,
        db_sha256: None,
        db_size: None,
        memory_mib: 512,
        vcpus: 1,
        agent_monitor_url: "http://127.0.0.1:9/RPC2".into(),
        job_token: None,
        heartbeat_secs: 5,
    }
}
