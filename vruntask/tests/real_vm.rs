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

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Launch, import, triage, stop (database archived, nothing left), launch again: the
/// archive is restored and the triage is still there.
#[test]
fn viewer_survives_a_stop_and_relaunch_with_its_triage() {
    let _vm = vm_lock();
    let mut h = Harness::start(
        &["--lease-secs", "30", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "30"],
        &[],
    );
    let pair = h.pair("life");
    runtime().block_on(async {
        let (g1, v) = h.launch_ready(&pair).await;
        assert_eq!(v.projects().await, serde_json::json!({"projects": []}), "a fresh viewer is empty");
        assert!(h.job_log(g1).contains("DbFresh"), "{}", h.job_log(g1));
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(g1)).unwrap()).unwrap();
        assert_eq!(spec.db_path, None);
        // The API refuses a wrong key: the forward reaches the real, authenticating viewer.
        let bad =
            v.http.get(format!("{}/api/projects", v.base)).header("API-Key", "0".repeat(64)).send().await.unwrap();
        assert_eq!(bad.status().as_u16(), 401);

        // Results in.
        let created =
            v.json(v.api(reqwest::Method::PUT, "projects").json(&serde_json::json!({"name": "pkg"})), 201).await;
        let project_id = created["id"].as_i64().expect("project id");
        let part = reqwest::multipart::Part::bytes(SARIF.as_bytes().to_vec()).file_name("r.sarif");
        let form = reqwest::multipart::Form::new().part("file1", part);
        let job =
            v.json(v.api(reqwest::Method::POST, &format!("projects/{project_id}/analysis")).multipart(form), 202).await;
        let job_id = job["jobId"].as_str().expect("jobId").to_string();
        let end = Instant::now() + PATIENCE;
        loop {
            let j = v.json(v.api(reqwest::Method::GET, &format!("jobs/{job_id}")), 200).await;
            match j["status"].as_str() {
                Some("completed") => break,
                Some("queued") | Some("running") if Instant::now() < end => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                _ => panic!("import job did not complete: {j}"),
            }
        }
        let findings = v.findings(project_id).await;
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| f["status"] == "new"), "{findings:?}");
        let target = findings.iter().find(|f| f["rule"] == "-Wformat").expect("the -Wformat finding").clone();
        let fid = target["id"].as_i64().unwrap();

        // Triage through the page, as alice (with the front door's proof); a forged user header is refused.
        assert_eq!(v.triage_forged("alice", fid, "false_positive", "no").await, 403);
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
        assert!(
            before.contains(&(target["fingerprint"].as_str().unwrap().to_string(), "confirmed".into())),
            "{before:?}"
        );

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
        assert_eq!(
            spec.db_path.as_deref().map(Path::new),
            Some(archives[0].as_path()),
            "the job restores the stored archive"
        );
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
    let mut h = Harness::start(
        &["--lease-secs", "6", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "2"],
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
        // agent-monitor salvaged the dead job's VM: the power button made the guest save its
        // database, which was stored, and the work directory the job could not remove is gone.
        let stale = h.work_root().join(h.domain(&pair, g1));
        while stale.exists() {
            assert!(Instant::now() < end, "the killed job's work directory remains:\n{}", h.daemon_log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let stored = files_under(&h.state().join("archives"));
        assert_eq!(stored.len(), 1, "the dead VM's database was salvaged: {stored:?}\n{}", h.daemon_log());
        let rec = h.status(&pair).await;
        assert!(rec.history.iter().any(|t| t.reason.contains("salvaged")), "{:#?}", rec.history);

        let (g2, v2) = h.launch_ready(&pair).await;
        assert!(g2 > g1, "a new generation");
        assert_eq!(domains_of(pair.project()), [h.domain(&pair, g2)], "a fresh VM, not the old one");
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(g2)).unwrap()).unwrap();
        assert_eq!(spec.db_path.as_deref().map(Path::new), Some(stored[0].as_path()));
        assert!(h.job_log(g2).contains("DbRestored"), "{}", h.job_log(g2));
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
