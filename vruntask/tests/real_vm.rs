//! vruntask for real: the agent-monitor binary launches `vruntask`, which boots the viewer
//! image (target/viewer-image) on libvirtd (`qemu:///system`, TCG) and reaches its viewer on
//! a 127.0.0.1 forward. Needs libvirtd running (scripts/test starts it), the image
//! (scripts/test builds it) and `target/debug/agent-monitor` (built by `cargo build` /
//! scripts/test; `cargo test -p vruntask` alone does not build other crates' binaries).
//!
//! The VMs run one at a time (2 cores, ~10 s per boot under TCG): every test holds
//! [`VM_LOCK`]. Every wait is bounded (generously); nothing asserts how fast things are.
//! Each test owns a state directory, a work root and project names of its own; a [`Harness`]
//! guard kills the daemon and any job it started, destroys and undefines every domain of
//! those projects, and removes the directories, whatever happened.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// PIDs holding a file open: a job holds its `g<N>.lock` for as long as it runs.
use agent_monitor::launcher::lock_holders as holders;
use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::methods::{InstanceRecord, LaunchViewer};
use vrun_proto::Pair;

static VM_LOCK: Mutex<()> = Mutex::new(());

const URI: &str = "qemu:///system";
/// Bound of every wait for a VM to boot, stop or be reaped.
const PATIENCE: Duration = Duration::from_secs(180);

/// `target/debug` (or wherever cargo put this crate's binaries).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vruntask")).parent().unwrap().to_path_buf()
}

fn agent_monitor_bin() -> PathBuf {
    let p = bin_dir().join("agent-monitor");
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`; scripts/test does)",
        p.display()
    );
    p
}

fn image_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/viewer-image");
    assert!(
        p.join("vmlinuz").is_file() && p.join("initrd.img").is_file(),
        "{} holds no viewer image: run `scripts/build-viewer-image --out target/viewer-image` (scripts/test does)",
        p.display()
    );
    p.canonicalize().unwrap()
}

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh").arg("-c").arg(URI).args(args).stdin(Stdio::null()).output().expect("run virsh")
}

/// Every defined domain's name.
fn all_domains() -> Vec<String> {
    let out = virsh(&["list", "--all", "--name"]);
    assert!(out.status.success(), "virsh list failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Domains of `project`'s viewers (vrun names them `vrun-<project>-<viewer>-g<generation>`).
fn domains_of(project: &str) -> Vec<String> {
    let prefix = format!("vrun-{project}-");
    all_domains().into_iter().filter(|d| d.starts_with(&prefix)).collect()
}

fn kill9(pid: i32) {
    // SAFETY: plain kill(2) of a process this test started (directly or through agent-monitor).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Progress on stderr (seen with `--nocapture`), seconds since the test started.
fn step(t0: Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default()
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
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
struct Harness {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    url: String,
    projects: Vec<String>,
    t0: Instant,
}

impl Harness {
    /// Starts agent-monitor with `flags` (lease and timing) and `env` (VRUN_* for its jobs).
    fn start(flags: &[&str], env: &[(&str, &str)]) -> Harness {
        let am = agent_monitor_bin();
        let image = image_dir();
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
        let log = std::fs::File::create(dir.path().join("agent-monitor.log")).unwrap();
        let mut cmd = Command::new(am);
        cmd.args(["serve", "--state-dir"])
            .arg(dir.path().join("state"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--libvirt-uri", URI, "--job-command"])
            .arg(env!("CARGO_BIN_EXE_vruntask"))
            .arg("--platform")
            .arg(&image)
            .args(flags)
            .env("VRUN_LIBVIRT_URI", URI)
            .env("VRUN_WORK_ROOT", &work)
            .env("VRUN_RUNTIME_DIR", dir.path().join("run"))
            // KVM exists on the development machines but guests hang under it.
            .env("VRUN_ACCEL", std::env::var("VRUN_ACCEL").unwrap_or_else(|_| "tcg".into()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn agent-monitor");
        let h = Harness { dir, daemon: Some(child), url: format!("http://127.0.0.1:{port}/RPC2"), projects: Vec::new(), t0: Instant::now() };
        let end = Instant::now() + Duration::from_secs(30);
        while !h.daemon_log().contains("serving XML-RPC") {
            assert!(Instant::now() < end, "agent-monitor did not start:\n{}", h.daemon_log());
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    /// A pair with a project name no other test (or earlier run) uses.
    fn pair(&mut self, tag: &str) -> Pair {
        let project = format!("rvm{}{tag}{}", std::process::id(), self.projects.len());
        self.projects.push(project.clone());
        Pair::new(&project, "CodeDX").unwrap()
    }

    /// An admin client: agent-monitor creates its secrets in `<state>/secrets/` at start
    /// (a daemon without them takes no credentials).
    fn client(&self) -> AgentMonitorClient {
        let creds = match std::fs::read_to_string(self.state().join("secrets/admin.secret")) {
            Ok(s) => Credentials::Basic { user: "admin".into(), secret: s.trim().to_string() },
            Err(_) => Credentials::None,
        };
        AgentMonitorClient::new(&self.url, creds).unwrap()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn work_root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent-monitor.log")).unwrap_or_default()
    }

    fn job_file(&self, generation: i64) -> PathBuf {
        self.state().join("jobs").join(format!("g{generation}.json"))
    }

    fn job_lock(&self, generation: i64) -> PathBuf {
        self.state().join("jobs").join(format!("g{generation}.lock"))
    }

    fn job_log(&self, generation: i64) -> String {
        std::fs::read_to_string(self.state().join("jobs").join(format!("g{generation}.log"))).unwrap_or_default()
    }

    /// What to print when a wait runs out.
    fn diagnostics(&self, generation: i64) -> String {
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

    async fn status(&self, pair: &Pair) -> InstanceRecord {
        self.client().viewer_status(pair).await.expect("viewerStatus")
    }

    /// Waits (bounded) until generation `generation` of `pair` is in `state`; fails at once
    /// when it ends in another terminal state.
    async fn wait_state(&self, pair: &Pair, generation: i64, state: &str) -> InstanceRecord {
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
    async fn wait_job_exit(&self, generation: i64) {
        let end = Instant::now() + PATIENCE;
        while !holders(&self.job_lock(generation)).is_empty() {
            assert!(Instant::now() < end, "the job of g{generation} did not exit:\n{}", self.diagnostics(generation));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        step(self.t0, &format!("the job of g{generation} exited"));
    }

    async fn launch(&self, pair: &Pair) -> i64 {
        let mut req = LaunchViewer::new(pair.clone());
        req.user = Some("alice".into());
        let reply = self.client().launch_viewer(&req).await.expect("launchViewer");
        assert!(reply.launched, "{reply:?}");
        step(self.t0, &format!("launched g{} of {pair}", reply.generation));
        reply.generation
    }

    /// Launches and waits for ready; returns the generation and a client of its viewer.
    async fn launch_ready(&self, pair: &Pair) -> (i64, Viewer) {
        let generation = self.launch(pair).await;
        let rec = self.wait_state(pair, generation, "ready").await;
        assert_eq!(rec.domain, pair.domain_name(generation), "{rec:#?}");
        assert_eq!(domains_of(pair.project()), [pair.domain_name(generation)], "exactly this generation's domain runs");
        // The disks hold the API key and the database, under predictable names: owner only.
        let work = self.work_root().join(pair.domain_name(generation));
        assert_eq!(std::fs::metadata(&work).unwrap().permissions().mode() & 0o777, 0o711, "{}", work.display());
        for disk in ["config.img", "output.img"] {
            let mode = std::fs::metadata(work.join(disk)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{disk} is open to others: {mode:o}");
        }
        let avail = self.client().is_viewer_available(pair).await.expect("isViewerAvailable");
        assert!(avail.ready, "{avail:?}");
        assert_eq!(avail.address, rec.address);
        let port = avail.address.strip_prefix("127.0.0.1:").unwrap_or_else(|| panic!("not a loopback address: {avail:?}"));
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
    fn assert_nothing_left(&self, pair: &Pair) {
        assert_eq!(domains_of(pair.project()), Vec::<String>::new(), "no domain may outlive its run");
        assert_eq!(entries(&self.work_root()), Vec::<String>::new(), "the work root must be empty");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for lock in files_under(&self.state().join("jobs")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "lock")) {
            for pid in holders(&lock) {
                kill9(pid);
            }
        }
        for project in &self.projects {
            for name in domains_of(project) {
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
struct Viewer {
    base: String,
    apikey: String,
    http: reqwest::Client,
}

impl Viewer {
    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/{path}", self.base)).header("API-Key", &self.apikey)
    }

    async fn json(&self, req: reqwest::RequestBuilder, want: u16) -> serde_json::Value {
        let resp = req.send().await.expect("viewer answers");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, want, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    async fn projects(&self) -> serde_json::Value {
        self.json(self.api(reqwest::Method::GET, "projects"), 200).await
    }

    async fn findings(&self, project_id: i64) -> Vec<serde_json::Value> {
        let v = self.json(self.api(reqwest::Method::GET, &format!("projects/{project_id}/findings")), 200).await;
        v["findings"].as_array().cloned().unwrap_or_else(|| panic!("no findings array: {v}"))
    }

    /// The triage form, posted as `user` (the page authorisation the SWAMP front end adds).
    async fn triage(&self, user: &str, finding: i64, status: &str, comment: &str) -> u16 {
        let body = format!("status={status}&comment={}", comment.replace(' ', "+"));
        self.http
            .post(format!("{}/findings/{finding}", self.base))
            .header("Authorization", format!("SWAMP {user}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("viewer answers")
            .status()
            .as_u16()
    }
}

const SARIF: &str = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"gcc"}},"results":[
 {"ruleId":"-Wunused-variable","level":"warning","message":{"text":"unused variable x"},
  "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/a.c"},"region":{"startLine":3}}}]},
 {"ruleId":"-Wformat","level":"error","message":{"text":"format expects int"},
  "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/b.c"},"region":{"startLine":9}}}]}]}]}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn vm_lock() -> std::sync::MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Launch, import, triage, stop (database archived, nothing left), launch again: the
/// archive is restored and the triage is still there.
#[test]
fn viewer_survives_a_stop_and_relaunch_with_its_triage() {
    let _vm = vm_lock();
    let mut h = Harness::start(&["--lease-secs", "30", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "30"], &[]);
    let pair = h.pair("life");
    runtime().block_on(async {
        let (g1, v) = h.launch_ready(&pair).await;
        assert_eq!(v.projects().await, serde_json::json!({"projects": []}), "a fresh viewer is empty");
        assert!(h.job_log(g1).contains("DbFresh"), "{}", h.job_log(g1));
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(g1)).unwrap()).unwrap();
        assert_eq!(spec.db_path, None);
        // The API refuses a wrong key: the forward reaches the real, authenticating viewer.
        let bad = v.http.get(format!("{}/api/projects", v.base)).header("API-Key", "0".repeat(64)).send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 401);

        // Results in.
        let created = v.json(v.api(reqwest::Method::PUT, "projects").json(&serde_json::json!({"name": "pkg"})), 201).await;
        let project_id = created["id"].as_i64().expect("project id");
        let part = reqwest::multipart::Part::bytes(SARIF.as_bytes().to_vec()).file_name("r.sarif");
        let form = reqwest::multipart::Form::new().part("file1", part);
        let job = v.json(v.api(reqwest::Method::POST, &format!("projects/{project_id}/analysis")).multipart(form), 202).await;
        let job_id = job["jobId"].as_str().expect("jobId").to_string();
        let end = Instant::now() + PATIENCE;
        loop {
            let j = v.json(v.api(reqwest::Method::GET, &format!("jobs/{job_id}")), 200).await;
            match j["status"].as_str() {
                Some("completed") => break,
                Some("queued") | Some("running") if Instant::now() < end => tokio::time::sleep(Duration::from_millis(250)).await,
                _ => panic!("import job did not complete: {j}"),
            }
        }
        let findings = v.findings(project_id).await;
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| f["status"] == "new"), "{findings:?}");
        let target = findings.iter().find(|f| f["rule"] == "-Wformat").expect("the -Wformat finding").clone();
        let fid = target["id"].as_i64().unwrap();

        // Triage through the page, as alice; someone not in the job's users is refused.
        assert_eq!(v.triage("mallory", fid, "false_positive", "no").await, 403);
        assert_eq!(v.triage("alice", fid, "confirmed", "real bug").await, 303);
        let status_of = |fs: &[serde_json::Value]| -> Vec<(String, String)> {
            let mut s: Vec<_> = fs
                .iter()
                .map(|f| (f["fingerprint"].as_str().unwrap().to_string(), f["status"].as_str().unwrap().to_string()))
                .collect();
            s.sort();
            s
        };
        let before = status_of(&v.findings(project_id).await);
        assert!(before.contains(&(target["fingerprint"].as_str().unwrap().to_string(), "confirmed".into())), "{before:?}");

        // Stop: the guest saves, vruntask stores, undefines and cleans up.
        h.client().abort_viewer(&pair).await.expect("abortViewer");
        let rec = h.wait_state(&pair, g1, "stopped").await;
        assert!(rec.reason.starts_with("stopped"), "{rec:#?}");
        h.wait_job_exit(g1).await;
        h.assert_nothing_left(&pair);
        let archives = files_under(&h.state().join("archives"));
        assert_eq!(archives.len(), 1, "one archive stored: {archives:?}");
        assert!(archives[0].file_name().unwrap().to_string_lossy().starts_with(&format!("g{g1}-")), "{archives:?}");
        assert!(std::fs::metadata(&archives[0]).unwrap().len() > 0);

        // Launch again: a new generation restores the archive; the triage is still there.
        let (g2, v2) = h.launch_ready(&pair).await;
        assert!(g2 > g1);
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(g2)).unwrap()).unwrap();
        assert_eq!(spec.db_path.as_deref().map(Path::new), Some(archives[0].as_path()), "the job restores the stored archive");
        assert!(h.job_log(g2).contains("DbRestored"), "the guest reported DBRESTORED:\n{}", h.job_log(g2));
        let projects = v2.projects().await;
        assert_eq!(projects["projects"][0]["id"].as_i64(), Some(project_id), "{projects}");
        assert_eq!(status_of(&v2.findings(project_id).await), before, "findings and their triage survived the restart");

        h.client().abort_viewer(&pair).await.expect("abortViewer");
        h.wait_state(&pair, g2, "stopped").await;
        h.wait_job_exit(g2).await;
        h.assert_nothing_left(&pair);
        assert_eq!(files_under(&h.state().join("archives")).len(), 2, "the second run's database is stored too");
    });
}

/// vruntask killed outright while its VM runs: the lease runs out, agent-monitor fails the
/// instance and destroys the orphaned domain; the next launch gets a fresh VM.
#[test]
fn a_killed_job_loses_its_lease_and_its_vm() {
    let _vm = vm_lock();
    // A start grace shorter than the default 60 s: the lease floor it sets would otherwise
    // keep a job killed in its first minute alive that long.
    let mut h = Harness::start(
        &["--lease-secs", "6", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "2", "--start-grace-secs", "10"],
        &[],
    );
    let pair = h.pair("kill");
    runtime().block_on(async {
        let (g1, _v) = h.launch_ready(&pair).await;
        let pids = holders(&h.job_lock(g1));
        assert_eq!(pids.len(), 1, "one job process holds the lock: {pids:?}");
        let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", pids[0])).unwrap_or_default();
        assert!(cmdline.contains("vruntask"), "the lock holder is vruntask: {cmdline:?}");
        kill9(pids[0]);
        step(h.t0, &format!("killed the job of g{g1} (pid {})", pids[0]));

        // The lease runs out (a sweep that probes the job lock may notice the dead job first).
        let rec = h.wait_state(&pair, g1, "failed").await;
        assert!(
            rec.reason.contains("lease expired") || rec.reason.contains("job exited without reporting"),
            "failed because the job is gone: {rec:#?}"
        );
        let end = Instant::now() + PATIENCE;
        while !domains_of(pair.project()).is_empty() {
            assert!(Instant::now() < end, "the dead generation's domain was not removed:\n{}", h.daemon_log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        step(h.t0, &format!("the domain of g{g1} is gone"));
        // The killed job cannot remove its work directory (disks, serial log); whatever
        // agent-monitor did not clean up is the operator's (here: the test's) job.
        let stale = h.work_root().join(pair.domain_name(g1));
        if stale.exists() {
            step(h.t0, &format!("removing the killed job's work directory {}", stale.display()));
            match std::fs::remove_dir_all(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot remove {}: {e}", stale.display()),
                _ => {}
            }
        }
        // Whether agent-monitor salvaged the dead VM's database or not, the next run starts
        // from exactly what is stored.
        let stored = files_under(&h.state().join("archives"));

        let (g2, v2) = h.launch_ready(&pair).await;
        assert!(g2 > g1, "a new generation");
        assert_eq!(domains_of(pair.project()), [pair.domain_name(g2)], "a fresh VM, not the old one");
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(g2)).unwrap()).unwrap();
        match stored.as_slice() {
            [] => {
                assert_eq!(spec.db_path, None);
                assert!(h.job_log(g2).contains("DbFresh"), "nothing was stored, nothing restored:\n{}", h.job_log(g2));
            }
            [one] => {
                assert_eq!(spec.db_path.as_deref().map(Path::new), Some(one.as_path()));
                assert!(h.job_log(g2).contains("DbRestored"), "{}", h.job_log(g2));
            }
            many => panic!("one run stored more than one archive: {many:?}"),
        }
        assert_eq!(v2.projects().await, serde_json::json!({"projects": []}));
        h.client().abort_viewer(&pair).await.expect("abortViewer");
        h.wait_state(&pair, g2, "stopped").await;
        h.wait_job_exit(g2).await;
        h.assert_nothing_left(&pair);
    });
}

/// A guest that never prints VIEWERUP (here: the real image given 3 s, far less than it needs
/// under TCG) fails the run within the boot timeout and leaves nothing behind.
#[test]
fn no_viewerup_within_the_boot_timeout_fails_and_cleans_up() {
    let _vm = vm_lock();
    let mut h = Harness::start(
        &["--lease-secs", "30", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "30"],
        &[("VRUN_BOOT_TIMEOUT", "3"), ("VRUN_STOP_TIMEOUT", "5")],
    );
    let pair = h.pair("boot");
    runtime().block_on(async {
        let g = h.launch(&pair).await;
        let rec = h.wait_state(&pair, g, "failed").await;
        assert!(rec.reason.contains("VIEWERUP"), "{rec:#?}");
        assert!(rec.history.iter().any(|t| t.to == "booting"), "the VM did start: {rec:#?}");
        h.wait_job_exit(g).await;
        h.assert_nothing_left(&pair);
        assert!(files_under(&h.state().join("archives")).is_empty(), "nothing was saved, nothing stored");
    });
}
