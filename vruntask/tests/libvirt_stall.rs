//! A libvirt that stops answering (issue: "the main job fails on a brand-new host"): each
//! job reaches libvirtd through a proxy that holds one kind of call (tests/common/stall.rs).
//! The job must keep heartbeating, fail with a reason that names the call (never a lease
//! expiry), and — once libvirt answers again — leave nothing of the run behind.

mod common;

use std::time::Duration;

use common::stall::*;
use common::*;

/// `define` never answers: the run fails at the libvirt deadline, naming the call, while
/// the lease (shorter than that deadline) is kept by heartbeats. When libvirt answers, the
/// domain that the late define created is removed before the job exits.
#[test]
fn a_define_that_never_answers_fails_by_name_and_leaves_nothing() {
    let _vm = vm_lock();
    let dir = tempfile::tempdir().unwrap();
    let proxy = StallProxy::start(dir.path(), &[DOMAIN_DEFINE_XML, DOMAIN_DEFINE_XML_FLAGS]);
    let mut h = Harness::start(
        &["--lease-secs", "4", "--heartbeat-secs", "1", "--start-grace-secs", "4", "--sweep-secs", "1"],
        &[("VRUN_LIBVIRT_URI", &proxy.uri), ("VRUN_LIBVIRT_TIMEOUT", "8")],
    );
    let pair = h.pair("stalldef");
    runtime().block_on(async {
        let g = h.launch(&pair).await;
        let rec = h.wait_state(&pair, g, "failed").await;
        assert!(rec.reason.contains("libvirt did not answer domain define within 8 s"), "{rec:#?}");
        assert!(rec.history.iter().all(|t| !t.reason.contains("lease expired")), "{:#?}", rec.history);
        assert_eq!(proxy.held(), 1, "the define reached the proxy and was held");
        // The job waits for libvirt so that it can remove what the define may still create.
        assert!(!holders(&h.job_lock(g)).is_empty(), "the job gave up on cleaning up");
        proxy.release();
        step(h.t0, "libvirt answers again");
        h.wait_job_exit(g).await;
        h.assert_nothing_left(&pair);
        assert!(h.job_log(g).contains("waiting for libvirt to answer before removing the domain"), "{}", h.job_log(g));
    });
}

/// The sweep gives up on a launch whose `start` hangs and cancels the job (SIGTERM, as the
/// reaper and an admin do). The job ends at once, waits for the hung call, then removes the
/// domain that call started; nothing survives it.
#[test]
fn a_job_cancelled_while_libvirt_hangs_removes_its_domain_before_it_exits() {
    let _vm = vm_lock();
    let dir = tempfile::tempdir().unwrap();
    let proxy = StallProxy::start(dir.path(), &[DOMAIN_CREATE, DOMAIN_CREATE_WITH_FLAGS]);
    let mut h = Harness::start(
        &["--sweep-secs", "1", "--launch-deadline-secs", "3", "--cancel-grace-secs", "90", "--heartbeat-secs", "1"],
        &[("VRUN_LIBVIRT_URI", &proxy.uri), ("VRUN_LIBVIRT_TIMEOUT", "60")],
    );
    let pair = h.pair("stallstart");
    runtime().block_on(async {
        let g = h.launch(&pair).await;
        let rec = h.wait_state(&pair, g, "failed").await;
        assert!(rec.reason.contains("stuck in launching"), "{rec:#?}");
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while !h.job_log(g).contains("SIGTERM") {
            assert!(std::time::Instant::now() < end, "the job was not cancelled:\n{}", h.diagnostics(g));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(proxy.held(), 1, "the start reached the proxy and was held");
        assert_eq!(h.own_domains(pair.project()), [h.domain(&pair, g)], "defined, its start pending");
        assert!(!holders(&h.job_lock(g)).is_empty(), "the job exited with its domain left behind");
        proxy.release();
        step(h.t0, "libvirt answers again");
        h.wait_job_exit(g).await;
        h.assert_nothing_left(&pair);
        assert!(h.job_log(g).contains("stopped before the VM started: SIGTERM"), "{}", h.job_log(g));
    });
}
