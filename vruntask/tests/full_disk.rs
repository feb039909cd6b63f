//! A full disk under agent-monitor while a real viewer runs (issue 13): heartbeats, the
//! stop and `storeviewer` meet fault 11 for a while; the viewer keeps serving, and its
//! database is stored once space returns. Boots a VM: runs in nextest's `vm` group.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vrun_test_support::Tmpfs;

/// The harness goes first (daemon, jobs and domains), then the disk under its state.
struct Rig {
    h: Harness,
    _disk: Tmpfs,
}

#[test]
fn a_viewer_keeps_serving_through_a_full_disk_and_its_database_is_stored_after() {
    let _vm = vm_lock();
    let mut h = Harness::create(&["--lease-secs", "10", "--heartbeat-secs", "2", "--reap-every-ms", "500"], &[]);
    let disk = Tmpfs::mount(&h.state(), "64m");
    h.spawn_daemon();
    let rig = Rig { h, _disk: disk };
    let mut h = rig.h;
    let pair = h.pair("full");
    let filler = h.state().join("filler");
    runtime().block_on(async {
        let (g, v) = h.launch_ready(&pair).await;
        let fill = || {
            let _ = Command::new("dd")
                .args(["if=/dev/zero", "bs=1M", "count=128"])
                .arg(format!("of={}", filler.display()))
                .stderr(std::process::Stdio::null())
                .status();
        };
        fill();
        // Longer than the lease on a full disk: the viewer serves on, its lease holds.
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            assert_eq!(v.projects().await, serde_json::json!({"projects": []}), "the viewer keeps serving");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let rec = h.status(&pair).await;
        assert_eq!(rec.state.as_str(), "ready", "{rec:#?}\n{}", h.diagnostics(g));
        // Stop it with space back for the one write, then fill again: the guest saves, the job's
        // storeviewer meets fault 11 and retries until space returns.
        std::fs::remove_file(&filler).unwrap();
        h.client().abort_viewer(&pair).await.unwrap();
        fill();
        tokio::time::sleep(Duration::from_secs(15)).await;
        std::fs::remove_file(&filler).unwrap();
        let rec = h.wait_state(&pair, g, "stopped").await;
        assert!(rec.reason.starts_with("stopped"), "{rec:#?}\n{}", h.diagnostics(g));
        let stored = files_under(&h.state().join("archives"));
        assert_eq!(stored.len(), 1, "the database was stored once space returned: {stored:?}\n{}", h.diagnostics(g));
    });
    drop(h);
}
