//! Real viewers through Slurm: a three-node cluster on this host (scripts/lib/slurm.sh),
//! agent-monitor with the Slurm launcher and no hypervisor of its own, one
//! `vruntask domain-monitor` per node, and the real vruntask booting the viewer image. One
//! cluster and few boots serve every scenario, in order:
//!
//! 1. cold Views of two pairs → READY, on different nodes; a warm View answers at once;
//! 2. `kill -9` of one vruntask → its node's DomainMonitor salvages the VM (database kept,
//!    pair freed) and the next View restores that database;
//! 3. agent-monitor `kill -9` and restart with two jobs running → both adopted, nothing
//!    submitted twice;
//! 4. an admin's `scancel` → the instance ends, its database saved by its job, its domain gone;
//! 5. a node lost (its slurmd killed) → its instance ends with NODE_FAIL, and the next View
//!    lands on another node;
//! 6. capacity: with one node down only two viewers fit; a third View waits in `launching`
//!    with Slurm's reason and becomes READY when another viewer stops.
//!
//! Runs in the `vm` test group (needs root, libvirtd, slurm-wlm, munge, target/viewer-image).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use vrun_proto::methods::LaunchViewer;
use vrun_proto::Pair;
use vrun_test_support::slurm::Cluster;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// One `vruntask domain-monitor` per node; stopped with SIGTERM at the end.
struct Monitors {
    children: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Monitors {
    fn start(h: &Harness, logs: &Path) -> Monitors {
        let children = NODES
            .iter()
            .map(|n| {
                let log = std::fs::File::create(logs.join(format!("domain-monitor.{n}.log"))).unwrap();
                let child = Command::new(env!("CARGO_BIN_EXE_vruntask"))
                    .args(["domain-monitor", "--node-name", n, "--agent-monitor-url", &h.url, "--secret-file"])
                    .arg(h.state().join("secrets/node.secret"))
                    .args(["--uri", URI, "--every", "1", "--runtime-dir"])
                    .arg(h.dir.path().join("run"))
                    .arg("--work-root")
                    .arg(h.work_root())
                    .env("RUST_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start a domain monitor");
                (n.to_string(), child)
            })
            .collect();
        Monitors { children, logs: logs.into() }
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("domain-monitor.{node}.log"))).unwrap_or_default()
    }

    /// SIGTERM to each; each must exit 0 within 10 s.
    fn stop(mut self) {
        for (node, child) in self.children.iter_mut() {
            // SAFETY: signalling a child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(Instant::now() < end, "the domain monitor of {node} ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(status.success(), "the domain monitor of {node} exited {status}");
        }
        self.children.clear();
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Slurm output of `pair`'s generation `g` (`%x.%j.log` in `logs`).
fn job_log(logs: &Path, pair: &Pair, g: i64) -> String {
    let prefix = format!("vrun.{}.{}.g{g}.", pair.project(), pair.viewer());
    entries(logs)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| std::fs::read_to_string(logs.join(n)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn archives_of(h: &Harness, pair: &Pair) -> usize {
    files_under(&h.state().join("archives").join(pair.project())).len()
}

/// Our jobs Slurm knows (any state), by name.
fn slurm_jobs(cluster: &Cluster) -> Vec<String> {
    cluster.run(&["squeue", "-h", "--states=all", "-o", "%j"]).lines().map(|l| l.trim().to_string()).collect()
}

async fn wait_until<F: std::future::Future<Output = bool>>(h: &Harness, what: &str, mut f: impl FnMut() -> F) {
    let end = Instant::now() + PATIENCE;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting until {what}\n--- agent-monitor:\n{}", h.daemon_log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    step(h.t0, what);
}

async fn wait_terminal(h: &Harness, pair: &Pair, g: i64) -> vrun_proto::methods::InstanceRecord {
    let end = Instant::now() + PATIENCE;
    loop {
        let r = h.status(pair).await;
        if r.generation == g && (r.state == "stopped" || r.state == "failed") {
            step(h.t0, &format!("{pair} g{g} ended {}: {}", r.state, r.reason));
            return r;
        }
        assert!(Instant::now() < end, "{pair} g{g} did not end: {r:#?}\n{}", h.daemon_log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn viewers_through_slurm_on_three_nodes() {
    let _vm = vm_lock();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let logs = scratch.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // One viewer per node (1 CPU, 1 GiB; a job asks 512 + 256 MiB). A silent slurmd's node
    // is declared down after 10 s.
    let cluster = Cluster::start(&scratch.path().join("slurm"), 3, 1, 1024, Duration::from_secs(10));
    let output = format!("{}/%x.%j.log", logs.display());
    let flags = [
        "--launcher",
        "slurm",
        "--slurm-output",
        &output,
        "--libvirt-uri",
        "none",
        "--sweep-secs",
        "1",
        "--heartbeat-secs",
        "2",
        "--lease-secs",
        "30",
    ];
    let conf = cluster.conf().to_string_lossy().into_owned();
    let mut h = Harness::start(&flags, &[("SLURM_CONF", &conf)]);
    let monitors = Monitors::start(&h, &logs);
    let rt = runtime();
    let (a, b, c) = (h.pair("a"), h.pair("b"), h.pair("c"));

    rt.block_on(async {
        // 1. Cold Views spread over nodes; a warm View.
        let (ga1, _va) = h.launch_ready(&a).await;
        let (gb1, _vb) = h.launch_ready(&b).await;
        let (ra, rb) = (h.status(&a).await, h.status(&b).await);
        assert!(!ra.job_id.is_empty() && !ra.node.is_empty(), "{ra:#?}");
        assert_ne!(ra.node, rb.node, "two viewers, two nodes");
        let warm = h.client().launch_viewer(&LaunchViewer::new(a.clone())).await.unwrap();
        assert!(!warm.launched && warm.generation == ga1 && warm.state.as_str() == "ready", "{warm:?}");
        let (hr, ar, br, cr) = (&h, &a, &b, &c);
        wait_until(&h, "the DomainMonitors report both domains", move || async move {
            hr.status(ar).await.domain_exists == "yes" && hr.status(br).await.domain_exists == "yes"
        })
        .await;

        // 2. kill -9 of A's vruntask: its node's DomainMonitor salvages the VM.
        let lock = h.dir.path().join("run/jobs").join(format!("{}.lock", h.domain(&a, ga1)));
        let pids = holders(&lock);
        assert_eq!(pids.len(), 1, "one vruntask holds A's run lock: {pids:?}");
        kill9(pids[0]);
        step(h.t0, "killed A's vruntask");
        let ended = wait_terminal(&h, &a, ga1).await;
        assert_eq!(ended.state, "failed", "{ended:#?}");
        wait_until(&h, "A's domain is salvaged", || async { h.own_domains(a.project()).is_empty() }).await;
        // The monitor logs the salvage after the domain is undefined, a moment after the
        // domain is gone from libvirt's list (CI once read the log in between).
        let (mr, dom) = (&monitors, h.domain(&a, ga1));
        let (node, domr) = (&ra.node, &dom);
        wait_until(&h, "the node's DomainMonitor logs the salvage", move || async move {
            let dm = mr.log(node);
            dm.contains("domain salvaged and removed") && dm.contains(domr.as_str())
        })
        .await;
        wait_until(&h, "A's salvaged database is kept", || async { archives_of(&h, &a) == 1 }).await;
        let hist = h.status(&a).await;
        assert!(hist.history.iter().any(|t| t.reason.contains("DomainMonitor salvaged its VM")), "{hist:#?}");
        let (ga2, _va2) = h.launch_ready(&a).await;
        let log = job_log(&logs, &a, ga2);
        assert!(log.contains("database to restore fetched and verified"), "{log}");
        assert!(log.contains("DbRestored"), "the salvaged database was restored:\n{log}");

        // 3. agent-monitor kill -9 and restart with A and B running: both adopted, nothing submitted again.
        let jobs_before = slurm_jobs(&cluster);
        h.kill9_daemon();
        h.spawn_daemon();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let ra2 = h.status(&a).await;
        assert_eq!((ra2.generation, ra2.state.as_str()), (ga2, "ready"), "{ra2:#?}");
        let rb1 = h.status(&b).await;
        assert_eq!((rb1.generation, rb1.state.as_str()), (gb1, "ready"), "{rb1:#?}");
        for (p, g) in [(&a, ga2), (&b, gb1)] {
            let again = h.client().launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap();
            assert!(!again.launched && again.generation == g, "{again:?}");
        }
        assert_eq!(slurm_jobs(&cluster), jobs_before, "no job submitted twice");
        let hr = &h;
        wait_until(&h, "the DomainMonitors report to the restarted agent-monitor", move || async move {
            hr.status(ar).await.domain_exists == "yes" && hr.status(br).await.domain_exists == "yes"
        })
        .await;

        // 4. An admin cancels B's job: the instance ends, its database saved.
        cluster.run(&["scancel", &rb.job_id]);
        step(h.t0, "scancel of B's job");
        wait_terminal(&h, &b, gb1).await;
        wait_until(&h, "B's database is stored and its domain gone", || async {
            archives_of(&h, &b) == 1 && h.own_domains(b.project()).is_empty()
        })
        .await;
        let blog = job_log(&logs, &b, gb1);
        assert!(blog.contains("viewer database stored"), "its own vruntask stored it on SIGTERM:\n{blog}");

        // 5. A's node is lost: its instance ends NODE_FAIL; the next View runs elsewhere.
        let lost = h.status(&a).await.node;
        cluster.lose_node(&lost);
        step(h.t0, &format!("lost node {lost}"));
        let gone = wait_terminal(&h, &a, ga2).await;
        assert!(gone.reason.contains("NODE_FAIL"), "{gone:#?}");
        // Here the lost node's vruntask lives on (one host) and stops its VM on being told.
        wait_until(&h, "A's old domain is gone", || async { h.own_domains(a.project()).is_empty() }).await;
        let (ga3, _va3) = h.launch_ready(&a).await;
        let ra3 = h.status(&a).await;
        assert_ne!(ra3.node, lost, "{ra3:#?}");

        // 6. Capacity: two nodes up, A on one; B takes the other; C waits for a hypervisor.
        let (gb2, _vb2) = h.launch_ready(&b).await;
        let mut req = LaunchViewer::new(c.clone());
        req.user = Some("alice".into());
        let gc = h.client().launch_viewer(&req).await.unwrap().generation;
        wait_until(&h, "C waits in launching with Slurm's reason", move || async move {
            let r = hr.status(cr).await;
            r.state == "launching" && r.reason.starts_with("waiting for a free hypervisor: ") && r.node.is_empty()
        })
        .await;
        h.client().abort_viewer(&a).await.unwrap();
        assert_eq!(wait_terminal(&h, &a, ga3).await.state, "stopped");
        h.wait_state(&c, gc, "ready").await;

        // The end: every viewer stopped with its database saved.
        for (p, g) in [(&b, gb2), (&c, gc)] {
            h.client().abort_viewer(p).await.unwrap();
            assert_eq!(wait_terminal(&h, p, g).await.state, "stopped");
        }
        wait_until(&h, "no domain is left", || async {
            [&a, &b, &c].iter().all(|p| h.own_domains(p.project()).is_empty())
        })
        .await;
        cluster.restore_node(&lost);
    });
    monitors.stop();
    drop(h);
    drop(cluster);
}
