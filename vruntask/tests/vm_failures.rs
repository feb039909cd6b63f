//! Failure cases with real VMs (issue "failure hardening"): agent-monitor killed while a VM
//! boots, and libvirtd restarted while a viewer runs. Each states the expected behaviour and
//! asserts it; the harness (tests/common) leaves nothing behind.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// `kill -9` of agent-monitor while a VM boots, then a restart on the same state directory:
/// the booting VM is adopted (same generation, same single domain, it becomes ready and
/// serves); nothing is launched twice and nothing is cleaned up under it.
#[test]
fn agent_monitor_killed_during_a_boot_adopts_the_vm() {
    let _vm = vm_lock();
    let mut h = Harness::start(
        &["--lease-secs", "20", "--heartbeat-secs", "2", "--sweep-secs", "2", "--orphan-grace-secs", "2"],
        &[],
    );
    let pair = h.pair("adopt");
    runtime().block_on(async {
        let g = h.launch(&pair).await;
        h.wait_state(&pair, g, "booting").await;
        assert_eq!(domains_of(pair.project()), [h.domain(&pair, g)]);
    });
    h.kill9_daemon();
    step(h.t0, "killed agent-monitor while the VM boots");
    // The job keeps reporting into the void for a moment; then agent-monitor comes back.
    std::thread::sleep(Duration::from_secs(2));
    h.spawn_daemon();
    step(h.t0, "agent-monitor restarted");
    // The start-up repair runs beside the first requests; wait for its verdict.
    let end = Instant::now() + Duration::from_secs(30);
    while !h.daemon_log().contains("adopted=1") {
        assert!(Instant::now() < end, "the booting VM's job was not adopted:\n{}", h.daemon_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    runtime().block_on(async {
        let rec = h.wait_state(&pair, 1, "ready").await;
        assert_eq!(rec.generation, 1, "the same generation, not a relaunch");
        assert_eq!(domains_of(pair.project()), [h.domain(&pair, 1)], "adopted, not doubled, not destroyed");
        let jobs: Vec<_> = files_under(&h.state().join("jobs"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert_eq!(jobs.len(), 1, "one job ever started: {jobs:?}");
        let avail = h.client().is_viewer_available(&pair).await.unwrap();
        let resp = reqwest::Client::new()
            .get(format!("http://{}/{}/api/projects", avail.address, avail.urluuid))
            .header("API-Key", &avail.apikey)
            .send()
            .await
            .expect("the adopted viewer answers");
        assert_eq!(resp.status().as_u16(), 200);
        // A couple of sweeps later it is still there: adoption is not followed by cleanup.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(h.status(&pair).await.state, "ready");
        assert_eq!(domains_of(pair.project()), [h.domain(&pair, 1)]);
        h.client().abort_viewer(&pair).await.unwrap();
        h.wait_state(&pair, 1, "stopped").await;
        h.wait_job_exit(1).await;
        h.assert_nothing_left(&pair);
    });
}

fn libvirt_answers() -> bool {
    Command::new("virsh").args(["-c", URI, "version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// libvirtd stopped while a viewer runs and started again: the viewer keeps serving (QEMU
/// does not depend on libvirtd), no instance is stuck, and the normal stop still saves the
/// database and leaves no domain and no files.
#[test]
fn libvirtd_restarted_during_a_run_leaves_nothing_stuck() {
    let _vm = vm_lock();
    let mut h = Harness::start(&["--lease-secs", "30", "--heartbeat-secs", "2", "--sweep-secs", "2"], &[]);
    let pair = h.pair("lvrestart");
    runtime().block_on(async {
        let (g, v) = h.launch_ready(&pair).await;
        let status = Command::new("pkill").args(["-TERM", "-x", "libvirtd"]).status().unwrap();
        assert!(status.success(), "libvirtd was running");
        let end = Instant::now() + Duration::from_secs(30);
        while libvirt_answers() {
            assert!(Instant::now() < end, "libvirtd did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        step(h.t0, "libvirtd stopped");
        // The viewer serves on, and agent-monitor says it cannot tell about the domain.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(v.projects().await, serde_json::json!({"projects": []}));
        assert_eq!(h.status(&pair).await.state, "ready");
        let listed = h.client().list_viewers().await.unwrap();
        assert_eq!(listed[0].domain_exists, "unknown");

        let mut libvirtd = Command::new("libvirtd");
        libvirtd.arg("-d");
        // A daemon must not inherit the test runner's descriptors (a lock a wrapper holds
        // around the test run would be held by libvirtd for as long as it lives).
        // SAFETY: only close(2), which is async-signal-safe, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut libvirtd, || {
                for fd in 3..1024 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        assert!(libvirtd.status().unwrap().success());
        let end = Instant::now() + Duration::from_secs(30);
        while !libvirt_answers() {
            assert!(Instant::now() < end, "libvirtd did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        step(h.t0, "libvirtd started again");
        let end = Instant::now() + Duration::from_secs(30);
        while h.client().list_viewers().await.unwrap()[0].domain_exists != "yes" {
            assert!(Instant::now() < end, "libvirt did not find the running domain again");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        h.client().abort_viewer(&pair).await.unwrap();
        let rec = h.wait_state(&pair, g, "stopped").await;
        assert!(rec.reason.contains("asked the viewer to stop"), "{rec:#?}");
        h.wait_job_exit(g).await;
        assert_eq!(files_under(&h.state().join("archives")).len(), 1, "the database was saved");
        h.assert_nothing_left(&pair);
    });
}
