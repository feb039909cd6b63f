//! One hypervisor, more than one agent-monitor, and the host's one-time set-up (issue: "the
//! main job fails on a brand-new host"): domains and work directories carry their
//! agent-monitor's id, so two daemons that both number generations from 1 keep their own
//! viewers; and the accelerator probe runs when agent-monitor starts, not in a View.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SWEEPY: &[&str] =
    &["--sweep-secs", "1", "--orphan-grace-secs", "1", "--heartbeat-secs", "1", "--lease-secs", "10"];

#[test]
fn two_agent_monitors_on_one_libvirt_keep_their_own_viewers() {
    let _vm = vm_lock();
    let mut a = Harness::start(SWEEPY, &[]);
    let mut b = Harness::start(SWEEPY, &[]);
    assert_ne!(a.monitor_id(), b.monitor_id(), "each state directory has its own id");
    // The same pair name in both, and both at generation 1.
    let (pa, pb) = (a.pair("twin"), b.pair("twin"));
    assert_eq!(pa, pb);
    runtime().block_on(async {
        let (ga, va) = a.launch_ready(&pa).await;
        let (gb, vb) = b.launch_ready(&pb).await;
        assert_eq!((ga, gb), (1, 1));
        assert_ne!(a.domain(&pa, 1), b.domain(&pb, 1));
        assert_eq!(domains_of(pa.project()).len(), 2, "both viewers run");
        // Several sweeps of each daemon later, both still run and serve.
        tokio::time::sleep(Duration::from_secs(6)).await;
        for (h, p, v) in [(&a, &pa, &va), (&b, &pb, &vb)] {
            assert_eq!(h.status(p).await.state, "ready", "{}", h.daemon_log());
            assert_eq!(h.own_domains(p.project()), [h.domain(p, 1)]);
            // Its own viewer answers (Viewer::json asserts the 200).
            v.projects().await;
            assert!(!h.daemon_log().contains("salvaging"), "a sweep salvaged a viewer:\n{}", h.daemon_log());
        }
        // Each lists the other's domain as foreign.
        let host = a.client().host_info().await.unwrap();
        assert_eq!(host.monitor_id, a.monitor_id());
        assert!(
            host.foreign_domains.iter().any(|d| d.name == b.domain(&pb, 1) && d.owner == b.monitor_id()),
            "{host:?}"
        );
        for (h, p) in [(&a, &pa), (&b, &pb)] {
            h.client().abort_viewer(p).await.unwrap();
            h.wait_state(p, 1, "stopped").await;
            h.wait_job_exit(1).await;
            h.assert_nothing_left(p);
        }
    });
}

#[test]
fn the_accelerator_is_probed_when_agent_monitor_starts_not_in_a_view() {
    let _vm = vm_lock();
    let mut h = Harness::start(&[], &[("VRUN_ACCEL", "auto")]);
    let cache = h.dir.path().join("run/accel");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&cache).is_ok_and(|c| c.starts_with(boot_id.trim())) {
        assert!(Instant::now() < end, "no accelerator verdict after agent-monitor's start:\n{}", h.daemon_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    step(h.t0, "the accelerator was settled before any View");
    let pair = h.pair("accel");
    runtime().block_on(async {
        let (g, _v) = h.launch_ready(&pair).await;
        assert!(!h.job_log(g).contains("accelerator probed"), "the View paid for the probe:\n{}", h.job_log(g));
        h.client().abort_viewer(&pair).await.unwrap();
        h.wait_state(&pair, g, "stopped").await;
        h.wait_job_exit(g).await;
        h.assert_nothing_left(&pair);
    });
}
