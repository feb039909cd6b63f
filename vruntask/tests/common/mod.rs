//! Shared harness of the real-VM tests: agent-monitor launching the real vruntask, which
//! boots the viewer image on libvirtd (`qemu:///system`, TCG). See real_vm.rs.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// PIDs holding a file open: a job holds its `g<N>.lock` for as long as it runs.
pub use agent_monitor::launcher::lock_holders as holders;
use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::methods::{InstanceRecord, LaunchViewer};
use vrun_proto::Pair;

pub mod stall;

pub static VM_LOCK: Mutex<()> = Mutex::new(());

pub const URI: &str = "qemu:///system";
/// Bound of every wait for a VM to boot, stop or be reaped.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// `target/debug` (or wherever cargo put this crate's binaries).
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vruntask")).parent().unwrap().to_path_buf()
}

pub fn agent_monitor_bin() -> PathBuf {
    let p = bin_dir().join("agent-monitor");
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`; scripts/test does)",
        p.display()
    );
    p
}

pub fn image_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/viewer-image");
    assert!(
        p.join("vmlinuz").is_file() && p.join("initrd.img").is_file(),
        "{} holds no viewer image: run `scripts/build-viewer-image --out target/viewer-image` (scripts/test does)",
        p.display()
    );
    p.canonicalize().unwrap()
}

pub fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh").arg("-c").arg(URI).args(args).stdin(Stdio::null()).output().expect("run virsh")
}

/// Every defined domain's name.
pub fn all_domains() -> Vec<String> {
    let out = virsh(&["list", "--all", "--name"]);
    assert!(out.status.success(), "virsh list failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Domains of `project`'s viewers, of any agent-monitor (vrun names them
/// `vrun-<agent-monitor id>-<project>-<viewer>-g<generation>`; test projects are unique).
pub fn domains_of(project: &str) -> Vec<String> {
    let part = format!("-{project}-");
    all_domains().into_iter().filter(|d| d.starts_with("vrun-") && d.contains(&part)).collect()
}

pub fn kill9(pid: i32) {
    // SAFETY: plain kill(2) of a process this test started (directly or through agent-monitor).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Progress on stderr (seen with `--nocapture`), seconds since the test started.
pub fn step(t0: Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default()
}

/// Every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// One agent-monitor with its own state directory and work root, and the projects a test
/// uses. Dropping it leaves nothing behind.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub daemon: Option<Child>,
    pub url: String,
    pub projects: Vec<String>,
    pub t0: Instant,
    /// How the daemon was started, to start it again on the same state directory.
    flags: Vec<String>,
    env: Vec<(String, String)>,
    port: u16,
}

impl Harness {
    /// Starts agent-monitor with `flags` (lease and timing) and `env` (VRUN_* for its jobs).
    pub fn start(flags: &[&str], env: &[(&str, &str)]) -> Harness {
        let mut h = Harness::create(flags, env);
        h.spawn_daemon();
        h
    }

    /// [`Harness::start`] without starting agent-monitor yet (to prepare its state directory
    /// first, e.g. mount a small disk there); [`Harness::spawn_daemon`] starts it.
    pub fn create(flags: &[&str], env: &[(&str, &str)]) -> Harness {
        image_dir();
        // QEMU runs as libvirt-qemu: it must be able to traverse down to the job's work dir.
        let parent = bin_dir().parent().unwrap().join("test-work");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new().prefix("real-vm-").tempdir_in(&parent).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o711)).unwrap();
        let port = free_port();
        let h = Harness {
            dir,
            daemon: None,
            url: format!("http://127.0.0.1:{port}/RPC2"),
            projects: Vec::new(),
            t0: Instant::now(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            port,
        };
        h
    }

    /// Starts agent-monitor on this harness's state directory and port; waits until it serves.
    pub fn spawn_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent-monitor.log"))
            .unwrap();
        let served_before = self.daemon_log().matches("serving XML-RPC").count();
        let mut cmd = Command::new(agent_monitor_bin());
        cmd.args(["serve", "--state-dir"]).arg(self.state()).args(["--listen", &format!("127.0.0.1:{}", self.port)]);
        // A test may leave agent-monitor without a hypervisor of its own (`none`: the
        // nodes' DomainMonitors watch the domains).
        if !self.flags.iter().any(|f| f == "--libvirt-uri") {
            cmd.args(["--libvirt-uri", URI]);
        }
        // A test may run the job through a wrapper (another mount namespace, say).
        if !self.flags.iter().any(|f| f == "--job-command") {
            cmd.arg("--job-command").arg(env!("CARGO_BIN_EXE_vruntask"));
        }
        cmd.arg("--platform")
            .arg(image_dir())
            .args(&self.flags)
            .env("VRUN_LIBVIRT_URI", URI)
            .env("VRUN_WORK_ROOT", self.work_root())
            .env("VRUN_RUNTIME_DIR", self.dir.path().join("run"))
            // KVM exists on the development machines but guests hang under it.
            .env("VRUN_ACCEL", std::env::var("VRUN_ACCEL").unwrap_or_else(|_| "tcg".into()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.daemon = Some(cmd.spawn().expect("spawn agent-monitor"));
        let end = Instant::now() + Duration::from_secs(30);
        while self.daemon_log().matches("serving XML-RPC").count() <= served_before {
            assert!(Instant::now() < end, "agent-monitor did not start:\n{}", self.daemon_log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of agent-monitor (its jobs and their VMs keep running).
    pub fn kill9_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// A pair with a project name no other test (or earlier run) uses.
    pub fn pair(&mut self, tag: &str) -> Pair {
        let project = format!("rvm{}{tag}{}", std::process::id(), self.projects.len());
        self.projects.push(project.clone());
        Pair::new(&project, "CodeDX").unwrap()
    }

    /// An admin client: agent-monitor creates its secrets in `<state>/secrets/` at start
    /// (a daemon without them takes no credentials).
    pub fn client(&self) -> AgentMonitorClient {
        let creds = match std::fs::read_to_string(self.state().join("secrets/admin.secret")) {
            Ok(s) => Credentials::Basic { user: "admin".into(), secret: s.trim().to_string() },
            Err(_) => Credentials::None,
        };
        AgentMonitorClient::new(&self.url, creds).unwrap()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The id agent-monitor created with its state directory.
    pub fn monitor_id(&self) -> String {
        let id = std::fs::read_to_string(self.state().join("monitor-id")).expect("agent-monitor wrote its id");
        id.trim().to_string()
    }

    /// Domains of `project` that this harness's agent-monitor owns (another agent-monitor
    /// on the same libvirt may run the same project's viewers).
    pub fn own_domains(&self, project: &str) -> Vec<String> {
        // Without an id (the daemon never started) no job of ours can have made a domain.
        let Ok(id) = std::fs::read_to_string(self.state().join("monitor-id")) else { return Vec::new() };
        let prefix = format!("vrun-{}-", id.trim());
        domains_of(project).into_iter().filter(|d| d.starts_with(&prefix)).collect()
    }

    /// The domain (and work directory) name of `pair`'s generation under this agent-monitor.
    pub fn domain(&self, pair: &Pair, generation: i64) -> String {
        pair.domain_name(&self.monitor_id(), generation)
    }

    pub fn work_root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent-monitor.log")).unwrap_or_default()
    }

    pub fn job_file(&self, generation: i64) -> PathBuf {
        self.state().join("jobs").join(format!("g{generation}.json"))
    }

    pub fn job_lock(&self, generation: i64) -> PathBuf {
        self.state().join("jobs").join(format!("g{generation}.lock"))
    }

    pub fn job_log(&self, generation: i64) -> String {
        std::fs::read_to_string(self.state().join("jobs").join(format!("g{generation}.log"))).unwrap_or_default()
    }

    /// What to print when a wait runs out.
    pub fn diagnostics(&self, generation: i64) -> String {
        let serial = files_under(&self.work_root())
            .into_iter()
            .filter(|p| p.ends_with("serial.log"))
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "--- job log g{generation}:\n{}\n--- serial:\n{serial}\n--- agent-monitor:\n{}",
            self.job_log(generation),
            self.daemon_log()
        )
    }

    pub async fn status(&self, pair: &Pair) -> InstanceRecord {
        self.client().viewer_status(pair).await.expect("viewerStatus")
    }

    /// Waits (bounded) until generation `generation` of `pair` is in `state`; fails at once
    /// when it ends in another terminal state.
    pub async fn wait_state(&self, pair: &Pair, generation: i64, state: &str) -> InstanceRecord {
        let end = Instant::now() + PATIENCE;
        loop {
            let rec = self.status(pair).await;
            if rec.generation == generation && rec.state == state {
                step(self.t0, &format!("g{generation} is {state}: {}", rec.reason));
                return rec;
            }
            let terminal = ["stopped", "failed"].contains(&rec.state.as_str());
            if (rec.generation == generation && terminal) || Instant::now() > end {
                panic!(
                    "waited for g{generation} to be {state}, it is g{} {} ({}):\n{rec:#?}\n{}",
                    rec.generation,
                    rec.state,
                    rec.reason,
                    self.diagnostics(generation)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (bounded) until generation `generation`'s job process has exited.
    pub async fn wait_job_exit(&self, generation: i64) {
        let end = Instant::now() + PATIENCE;
        while !holders(&self.job_lock(generation)).is_empty() {
            assert!(Instant::now() < end, "the job of g{generation} did not exit:\n{}", self.diagnostics(generation));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        step(self.t0, &format!("the job of g{generation} exited"));
    }

    pub async fn launch(&self, pair: &Pair) -> i64 {
        let mut req = LaunchViewer::new(pair.clone());
        req.user = Some("alice".into());
        let reply = self.client().launch_viewer(&req).await.expect("launchViewer");
        assert!(reply.launched, "{reply:?}");
        step(self.t0, &format!("launched g{} of {pair}", reply.generation));
        reply.generation
    }

    /// Launches and waits for ready; returns the generation and a client of its viewer.
    pub async fn launch_ready(&self, pair: &Pair) -> (i64, Viewer) {
        let generation = self.launch(pair).await;
        let rec = self.wait_state(pair, generation, "ready").await;
        assert_eq!(rec.domain, self.domain(pair, generation), "{rec:#?}");
        assert_eq!(
            self.own_domains(pair.project()),
            [self.domain(pair, generation)],
            "exactly this generation's domain runs"
        );
        // The disks hold the API key and the database, under predictable names: owner only.
        let work = self.work_root().join(self.domain(pair, generation));
        assert_eq!(std::fs::metadata(&work).unwrap().permissions().mode() & 0o777, 0o711, "{}", work.display());
        for disk in ["config.img", "output.img"] {
            let mode = std::fs::metadata(work.join(disk)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{disk} is open to others: {mode:o}");
        }
        let avail = self.client().is_viewer_available(pair).await.expect("isViewerAvailable");
        assert!(avail.ready, "{avail:?}");
        assert_eq!(avail.address, rec.address);
        let port =
            avail.address.strip_prefix("127.0.0.1:").unwrap_or_else(|| panic!("not a loopback address: {avail:?}"));
        assert!(port.parse::<u16>().is_ok(), "{avail:?}");
        let viewer = Viewer {
            base: format!("http://{}/{}", avail.address, avail.urluuid),
            apikey: avail.apikey,
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        };
        (generation, viewer)
    }

    /// Asserts nothing of the run is left: no domain of `pair`'s project, no work directory.
    /// Call after the job exited.
    pub fn assert_nothing_left(&self, pair: &Pair) {
        assert_eq!(self.own_domains(pair.project()), Vec::<String>::new(), "no domain may outlive its run");
        assert_eq!(entries(&self.work_root()), Vec::<String>::new(), "the work root must be empty");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for lock in
            files_under(&self.state().join("jobs")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "lock"))
        {
            for pid in holders(&lock) {
                kill9(pid);
            }
        }
        for project in &self.projects {
            for name in self.own_domains(project) {
                let _ = virsh(&["destroy", &name]);
                let _ = virsh(&["undefine", &name]);
            }
        }
        // libvirt may still hold the files of a domain it is tearing down; the TempDir's own
        // removal copes with the rest.
        let _ = std::fs::remove_dir_all(self.work_root());
    }
}

/// A viewer's HTTP API and pages.
pub struct Viewer {
    pub base: String,
    pub apikey: String,
    pub http: reqwest::Client,
}

impl Viewer {
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/{path}", self.base)).header("API-Key", &self.apikey)
    }

    pub async fn json(&self, req: reqwest::RequestBuilder, want: u16) -> serde_json::Value {
        let resp = req.send().await.expect("viewer answers");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, want, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    pub async fn projects(&self) -> serde_json::Value {
        self.json(self.api(reqwest::Method::GET, "projects"), 200).await
    }

    pub async fn findings(&self, project_id: i64) -> Vec<serde_json::Value> {
        let v = self.json(self.api(reqwest::Method::GET, &format!("projects/{project_id}/findings")), 200).await;
        v["findings"].as_array().cloned().unwrap_or_else(|| panic!("no findings array: {v}"))
    }

    /// The triage form, posted as `user` with the proof agent-monitor's front door adds.
    pub async fn triage(&self, user: &str, finding: i64, status: &str, comment: &str) -> u16 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let proof = vrun_proto::frontdoor::make_proof(&self.apikey, user, now);
        self.triage_with(("X-Vrun-Proof", &proof), finding, status, comment).await
    }

    /// The triage form with a forged user header, as anyone reaching the VM's forward could send.
    pub async fn triage_forged(&self, user: &str, finding: i64, status: &str, comment: &str) -> u16 {
        self.triage_with(("Authorization", &format!("SWAMP {user}")), finding, status, comment).await
    }

    async fn triage_with(&self, header: (&str, &str), finding: i64, status: &str, comment: &str) -> u16 {
        let body = format!("status={status}&comment={}", comment.replace(' ', "+"));
        self.http
            .post(format!("{}/findings/{finding}", self.base))
            .header(header.0, header.1)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("viewer answers")
            .status()
            .as_u16()
    }
}

pub const SARIF: &str = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"gcc"}},"results":[
 {"ruleId":"-Wunused-variable","level":"warning","message":{"text":"unused variable x"},
  "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/a.c"},"region":{"startLine":3}}}]},
 {"ruleId":"-Wformat","level":"error","message":{"text":"format expects int"},
  "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/b.c"},"region":{"startLine":9}}}]}]}]}"#;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub fn vm_lock() -> std::sync::MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
