//! A job on a node that shares no filesystem with agent-monitor, for real: vruntask runs in a
//! mount namespace where an empty tmpfs covers agent-monitor's state directory, fetches its
//! description and the database to restore over XML-RPC, finds the platform image by name in
//! its own image directory, boots the VM, and stores the database back. One VM at a time,
//! like real_vm.rs (needs libvirtd, target/viewer-image and target/debug/agent-monitor).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// `vruntask` run where agent-monitor's state directory reads as an empty directory (as
/// root: `unshare -m`). The state directory is found from the job lock the job inherits
/// (`<state>/jobs/g<N>.lock`), the one thing of it a remote job would still hold.
fn blind_wrapper(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("vruntask-without-state");
    let script = format!(
        "#!/bin/sh\nlock=$(readlink /proc/$$/fd/$VRUN_JOB_LOCK_FD) || exit 90\nstate=${{lock%/jobs/*}}\n\
         exec unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=0700,size=1m vrun-nofs \"$0\" && exec \"$@\"' \
         \"$state\" {} \"$@\"\n",
        env!("CARGO_BIN_EXE_vruntask")
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn harness(scratch: &Path, image_dir: &Path) -> Harness {
    let wrapper = blind_wrapper(scratch).to_string_lossy().into_owned();
    let flags = [
        "--lease-secs",
        "30",
        "--heartbeat-secs",
        "2",
        "--reap-every-ms",
        "500",
        "--job-delivery",
        "fetch",
        "--job-command",
        &wrapper,
    ];
    Harness::start(&flags, &[("VRUN_IMAGE_DIR", &image_dir.to_string_lossy())])
}

#[test]
fn a_job_without_the_state_directory_restores_and_stores_the_database() {
    let _vm = vm_lock();
    let scratch = tempfile::tempdir().unwrap();
    let image_parent = image_dir().parent().unwrap().to_path_buf();
    let mut h = harness(scratch.path(), &image_parent);
    let pair = h.pair("nofs");
    runtime().block_on(async {
        let (g1, _v) = h.launch_ready(&pair).await;
        assert!(!h.job_file(g1).exists(), "fetch delivery writes no job file");
        let pids = holders(&h.job_lock(g1));
        assert_eq!(pids.len(), 1, "{pids:?}");
        let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", pids[0])).unwrap();
        let state = h.state().to_string_lossy().into_owned();
        assert!(
            mounts.lines().any(|l| l.split(' ').nth(4) == Some(state.as_str()) && l.contains(" - tmpfs ")),
            "the job's view of {state} is an empty tmpfs:\n{mounts}"
        );
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains("job."), "no token in the job's arguments");
        h.client().abort_viewer(&pair).await.expect("abortViewer");
        h.wait_state(&pair, g1, "stopped").await;
        h.wait_job_exit(g1).await;
        h.assert_nothing_left(&pair);
        assert_eq!(files_under(&h.state().join("archives")).len(), 1, "the database was stored over XML-RPC");

        let (g2, _v2) = h.launch_ready(&pair).await;
        let log = h.job_log(g2);
        assert!(log.contains("database to restore fetched and verified"), "{log}");
        assert!(log.contains("DbRestored"), "the guest restored the fetched database:\n{log}");
        h.client().abort_viewer(&pair).await.expect("abortViewer");
        h.wait_state(&pair, g2, "stopped").await;
        h.wait_job_exit(g2).await;
        h.assert_nothing_left(&pair);
        assert_eq!(files_under(&h.state().join("archives")).len(), 2);
    });
}

/// A node whose copy of the platform differs from agent-monitor's fails the run, saying so,
/// before any VM is defined.
#[test]
fn a_node_with_a_different_image_fails_the_run_with_the_reason() {
    let _vm = vm_lock();
    let images = tempfile::tempdir().unwrap();
    let stale = images.path().join(image_dir().file_name().unwrap());
    std::fs::create_dir(&stale).unwrap();
    for f in ["vmlinuz", "initrd.img", "image.json"] {
        std::fs::copy(image_dir().join(f), stale.join(f)).unwrap();
    }
    std::fs::write(stale.join("image.json"), b"{}").unwrap();
    let mut h = harness(images.path(), images.path());
    let pair = h.pair("stale");
    runtime().block_on(async {
        let g = h.launch(&pair).await;
        let rec = h.wait_state(&pair, g, "failed").await;
        assert!(rec.reason.contains("does not match the job's"), "{rec:#?}");
        h.wait_job_exit(g).await;
        h.assert_nothing_left(&pair);
    });
}
