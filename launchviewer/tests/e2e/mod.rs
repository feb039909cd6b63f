//! The real stack for launchviewer's end-to-end tests: agent-monitor (from the target
//! directory) launching the real `vruntask`, which boots the viewer image
//! (`VRUN_VIEWER_IMAGE`, else target/viewer-image) on libvirtd (`qemu:///system`, TCG).
//!
//! A [`Stack`] owns a state directory, a work root and its own project names; dropping it
//! kills the daemon and every job it started, destroys and undefines every domain of those
//! projects and removes the directories, whatever happened. [`Stack::finish`] does the same
//! and then checks that nothing is left.
#![allow(dead_code, unused_imports)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vrun_proto::client::AgentMonitorClient;
use vrun_proto::methods::{Availability, InstanceRecord};
use vrun_proto::Pair;
pub use vrun_test_support::viewer::{api_get, get, split_url};
use vrun_test_support::{workspace_bin, AgentMonitor, Spawn};

/// Bound of every wait for a VM to boot or stop (TCG on 2 shared cores).
pub const PATIENCE: Duration = Duration::from_secs(300);
pub const URI: &str = "qemu:///system";

static VM_LOCK: Mutex<()> = Mutex::new(());

/// One VM test at a time in this process (a panic in another test does not poison it).
pub fn vm_lock() -> MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn image_dir() -> PathBuf {
    let p = std::env::var_os("VRUN_VIEWER_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/viewer-image"));
    assert!(
        p.join("vmlinuz").is_file() && p.join("initrd.img").is_file(),
        "{} holds no viewer image: run `scripts/build-viewer-image --out target/viewer-image` (scripts/test does)",
        p.display()
    );
    p.canonicalize().unwrap()
}

pub fn manifest_path(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).to_str().unwrap().to_owned()
}

fn virsh(args: &[&str]) -> Output {
    Command::new("virsh").arg("-c").arg(URI).args(args).stdin(Stdio::null()).output().expect("run virsh")
}

/// Defined domains (running or not) of `project`'s viewers, of any agent-monitor:
/// `vrun-<agent-monitor id>-<project>-<viewer>-g<N>` (test projects are unique).
pub fn domains_of(project: &str) -> Vec<String> {
    let out = virsh(&["list", "--all", "--name"]);
    assert!(out.status.success(), "virsh list: {}", String::from_utf8_lossy(&out.stderr));
    let part = format!("-{project}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|d| d.starts_with("vrun-") && d.contains(&part))
        .map(String::from)
        .collect()
}

// PIDs holding a file open: a job holds its `g<N>.lock` for as long as it runs.
use agent_monitor::launcher::lock_holders as holders;

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub struct Stack {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    daemon: Option<AgentMonitor>,
    pub url: String,
    /// agent-monitor's front door, `http://127.0.0.1:<port>` (the printed URLs' start).
    pub front: String,
    projects: Vec<String>,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_on(&image_dir())
    }

    /// A stack whose vruntask boots the image in `platform` (a directory).
    pub fn start_on(platform: &Path) -> Stack {
        // QEMU runs as libvirt-qemu: every directory down to the job's work dir must be
        // traversable by it.
        let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-work");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new().prefix("lv-").tempdir_in(&parent).unwrap();
        let root = dir.path().to_owned();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::create_dir(root.join("work")).unwrap();
        std::fs::set_permissions(root.join("work"), std::fs::Permissions::from_mode(0o711)).unwrap();
        let front = format!("127.0.0.1:{}", vrun_test_support::free_port());
        let daemon = Spawn::new(&root.join("state"), &workspace_bin("vruntask"))
            .args(["--front-door-listen", &front])
            .args(["--libvirt-uri", URI, "--platform"])
            .args([platform])
            .env("VRUN_WORK_ROOT", root.join("work"))
            .env("VRUN_RUNTIME_DIR", root.join("run"))
            .env("VRUN_LIBVIRT_URI", URI)
            // KVM exists on the development machines but guests hang under it.
            .env("VRUN_ACCEL", std::env::var("VRUN_ACCEL").unwrap_or_else(|_| "tcg".into()))
            .start();
        let url = daemon.url.clone();
        Stack {
            dir: Some(dir),
            root,
            daemon: Some(daemon),
            url,
            front: format!("http://{front}"),
            projects: Vec::new(),
        }
    }

    /// A project name of this stack's own (no other test or earlier run uses it).
    pub fn project(&mut self, tag: &str) -> String {
        let p = format!("lve{}{tag}", std::process::id());
        self.projects.push(p.clone());
        p
    }

    /// The domain name of `project`'s viewer `viewer`, generation `g`, under this stack's
    /// agent-monitor.
    pub fn domain(&self, project: &str, viewer: &str, g: i64) -> String {
        let id = std::fs::read_to_string(self.state().join("monitor-id")).expect("agent-monitor wrote its id");
        vrun_proto::Pair::new(project, viewer).unwrap().domain_name(id.trim(), g)
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn work_root(&self) -> PathBuf {
        self.root.join("work")
    }

    pub fn daemon_log(&self) -> String {
        self.daemon.as_ref().map(AgentMonitor::log).unwrap_or_default()
    }

    /// A file in the stack's directory.
    pub fn file(&self, name: &str, content: &[u8]) -> String {
        let p = self.root.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// Job descriptions agent-monitor wrote (`state/jobs/g<N>.json`): one per launched job.
    pub fn job_files(&self) -> Vec<String> {
        names_in(&self.state().join("jobs"))
            .into_iter()
            .filter(|n| n.starts_with('g') && n.ends_with(".json"))
            .collect()
    }

    /// Stored database archives of the pair (`state/archives/<project>/<viewer>/…`).
    pub fn archives(&self, project: &str, viewer: &str) -> Vec<PathBuf> {
        let d = self.state().join("archives").join(project).join(viewer);
        names_in(&d).into_iter().filter(|n| n.ends_with(".archive")).map(|n| d.join(n)).collect()
    }

    /// What to print when something went wrong: the job logs, serial logs and the daemon's.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for n in names_in(&self.state().join("jobs")).into_iter().filter(|n| n.ends_with(".log")) {
            let text = std::fs::read_to_string(self.state().join("jobs").join(&n)).unwrap_or_default();
            out.push_str(&format!("--- job log {n}:\n{text}\n"));
        }
        for run in names_in(&self.work_root()) {
            let serial = std::fs::read_to_string(self.work_root().join(&run).join("serial.log")).unwrap_or_default();
            out.push_str(&format!("--- serial of {run}:\n{serial}\n"));
        }
        out.push_str(&format!("--- agent-monitor:\n{}", self.daemon_log()));
        out
    }

    pub fn client(&self, role: &str) -> AgentMonitorClient {
        self.daemon.as_ref().expect("the stack's agent-monitor is running").client_as(role)
    }

    /// `launchviewer ARGS --agent-monitor URL --secret-file <launcher secret>`.
    pub fn launchviewer_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_launchviewer"));
        c.args(args)
            .args(["--agent-monitor", &self.url, "--secret-file"])
            .arg(self.state().join("secrets/launcher.secret"))
            .env_remove("AGENT_MONITOR_URL")
            .env_remove("AGENT_MONITOR_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn launchviewer(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let out = self.launchviewer_cmd(args).output().expect("run launchviewer");
        Run::new(out, started.elapsed())
    }

    pub fn availability(&self, project: &str, viewer: &str) -> Availability {
        rt().block_on(self.client("launcher").is_viewer_available(&Pair::new(project, viewer).unwrap()))
            .expect("isViewerAvailable")
    }

    pub fn status(&self, project: &str, viewer: &str) -> InstanceRecord {
        rt().block_on(self.client("admin").viewer_status(&Pair::new(project, viewer).unwrap())).expect("viewerStatus")
    }

    /// What an administrator's Stop does.
    pub fn abort(&self, project: &str, viewer: &str) {
        rt().block_on(self.client("admin").abort_viewer(&Pair::new(project, viewer).unwrap())).expect("abortViewer")
    }

    /// Waits (bounded) until generation `generation` of the pair is terminal; returns it.
    pub fn wait_terminal(&self, project: &str, viewer: &str, generation: i64) -> InstanceRecord {
        let end = Instant::now() + PATIENCE;
        loop {
            let rec = self.status(project, viewer);
            if rec.generation == generation && ["stopped", "failed"].contains(&rec.state.as_str()) {
                return rec;
            }
            assert!(Instant::now() < end, "g{generation} did not end: {rec:#?}\n{}", self.diagnostics());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits (bounded) until generation `generation`'s job process has exited.
    pub fn wait_job_exit(&self, generation: i64) {
        let lock = self.state().join("jobs").join(format!("g{generation}.lock"));
        let end = Instant::now() + PATIENCE;
        while !holders(&lock).is_empty() {
            assert!(Instant::now() < end, "the job of g{generation} did not exit:\n{}", self.diagnostics());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn clean(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        let jobs = self.state().join("jobs");
        for lock in names_in(&jobs).into_iter().filter(|n| n.ends_with(".lock")) {
            for pid in holders(&jobs.join(lock)) {
                // SAFETY: plain kill(2) of a job this stack's agent-monitor started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for project in &self.projects {
            for name in domains_of(project) {
                let _ = virsh(&["destroy", &name]);
                let _ = virsh(&["undefine", &name]);
            }
        }
    }

    /// Stops everything and checks that no domain and no directory of this stack is left.
    pub fn finish(mut self) {
        self.clean();
        for project in &self.projects {
            assert_eq!(domains_of(project), Vec::<String>::new(), "domains of {project} outlived the test");
        }
        let work = names_in(&self.work_root());
        assert!(work.is_empty(), "work directories left behind: {work:?}\n{}", self.diagnostics());
        let dir = self.dir.take().unwrap();
        let root = dir.path().to_owned();
        dir.close().expect("remove the stack's directory");
        assert!(!root.exists());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.clean();
        // libvirt may still hold files of a domain it is tearing down; TempDir copes with the rest.
        let _ = std::fs::remove_dir_all(self.work_root());
    }
}

/// What one launchviewer run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
    pub took: Duration,
}

impl Run {
    pub fn new(o: Output, took: Duration) -> Run {
        Run {
            stdout: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().expect("launchviewer exited normally"),
            took,
        }
    }

    /// The one stdout line (the contract allows no other).
    pub fn line(&self) -> &str {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected exactly one stdout line: {self:?}");
        lines[0]
    }

    /// The URL of a `READY <url>` line, after checking it and the exit code.
    pub fn ready_url(&self, stack: &Stack) -> String {
        let ok = self.code == 0 && self.line().starts_with("READY ");
        assert!(ok, "not READY: {self:?}\n{}", stack.diagnostics());
        self.line()["READY ".len()..].to_owned()
    }
}

/// A printed URL without its single-use sign-in token: the pair's stable findings URL.
pub fn clean(url: &str) -> String {
    url.split_once("?vrun_login=").map_or(url, |(u, _)| u).to_owned()
}

/// Signs in with a printed URL (as a browser would: its token for the session cookie), then
/// GETs `path` below the viewer's front door base; status and body.
pub fn front_door_get(printed: &str, path: &str) -> (u16, String) {
    let (base, _) = split_url(&clean(printed));
    rt().block_on(async {
        let c = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = c.get(printed).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "signing in with {printed}");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let r = c.get(format!("{base}/{path}")).header("cookie", cookie).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// Every finding of a project (one page of up to 5000).
pub fn findings(base: &str, apikey: &str, project_id: i64) -> Vec<serde_json::Value> {
    let v = api_get(base, apikey, &format!("projects/{project_id}/findings?per_page=5000"));
    let list = v["findings"].as_array().unwrap().clone();
    assert_eq!(v["total"].as_u64(), Some(list.len() as u64), "{v}");
    list
}

/// Runs a query on a stored viewer database archive (a plain SQLite file); first column.
pub fn archive_query(archive: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open_with_flags(archive, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = c.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, rusqlite::types::Value>(0)).unwrap();
    rows.map(|r| match r.unwrap() {
        rusqlite::types::Value::Text(s) => s,
        rusqlite::types::Value::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    })
    .collect()
}
