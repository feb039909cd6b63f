//! The operator's surface with real VMs (issue 18): a platform is approved only after it
//! booted once in a scratch VM, imported a sample and saved its database, and launches then
//! run it; under a limit of 2 live viewers a third View waits in line and starts when a kill
//! frees room; the kill leaves no domain, work directory or job behind.
//! One agent-monitor, four boots, one at a time across the suite (the VM lock).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn platforms_capacity_and_kill_with_real_viewers() {
    let _vm = vm_lock();
    let mut h = Harness::start(
        &["--max-viewers", "2", "--heartbeat-secs", "2", "--reap-every-ms", "500", "--cancel-grace-secs", "30"],
        &[],
    );
    h.projects.push("platform-v2".into());
    // A second platform: the same image under another name (every node finds it by name).
    let v2 = h.dir.path().join("viewer-image-v2");
    std::fs::create_dir(&v2).unwrap();
    for e in std::fs::read_dir(image_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), v2.join(e.file_name())).unwrap();
        }
    }
    let add = Command::new(agent_monitor_bin())
        .args(["platform", "add", "v2"])
        .arg(&v2)
        .args(["--wait", "300", "--url", &h.url])
        .env("AGENT_MONITOR_SECRET_FILE", h.state().join("secrets/admin.secret"))
        .output()
        .unwrap();
    step(h.t0, "platform v2 checked");
    assert!(
        add.status.success(),
        "platform add: {}\n{}\n{}",
        String::from_utf8_lossy(&add.stdout),
        String::from_utf8_lossy(&add.stderr),
        h.daemon_log()
    );
    assert!(String::from_utf8_lossy(&add.stdout).contains("approved"));
    // The scratch VM left nothing but its stored database.
    assert!(h.own_domains("platform-v2").is_empty(), "the scratch VM outlived its check");
    let list = Command::new(agent_monitor_bin())
        .args(["platform", "list", "--url", &h.url])
        .env("AGENT_MONITOR_SECRET_FILE", h.state().join("secrets/admin.secret"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.lines().any(|l| l.starts_with("v2 ") && l.contains("approved") && l.contains("yes")), "{list}");

    let (a, b, c) = (h.pair("capa"), h.pair("capb"), h.pair("capc"));
    runtime().block_on(async {
        let (ga, _) = h.launch_ready(&a).await;
        let spec: vrun_proto::job::JobSpec = serde_json::from_slice(&std::fs::read(h.job_file(ga)).unwrap()).unwrap();
        assert_eq!(std::path::Path::new(&spec.platform), v2.as_path(), "launches run the approved platform");
        let (gb, _) = h.launch_ready(&b).await;
        // The third waits: lock taken, no job, no domain, a place in line.
        let gc = h.launch(&c).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rec = h.status(&c).await;
        assert_eq!((rec.generation, rec.state.as_str(), rec.waiting), (gc, "launching", 1), "{rec:#?}");
        assert!(h.own_domains(c.project()).is_empty() && !h.job_lock(gc).exists(), "a waiting View was started");

        // Kill A through the REST API: answered once nothing of it is left.
        let base = h.url.trim_end_matches("/RPC2").to_string();
        let secret = std::fs::read_to_string(h.state().join("secrets/admin.secret")).unwrap();
        let t = Instant::now();
        let resp = reqwest::Client::new()
            .post(format!("{base}/api/v1/viewers/{}/{}/kill", a.project(), a.viewer()))
            .basic_auth("admin", Some(secret.trim()))
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
        step(h.t0, &format!("kill answered after {:.1} s", t.elapsed().as_secs_f64()));
        assert!(h.own_domains(a.project()).is_empty(), "kill left a domain");
        assert!(!h.work_root().join(h.domain(&a, ga)).exists(), "kill left a work directory");
        assert!(holders(&h.job_lock(ga)).is_empty(), "kill left the job running");
        let killed = h.status(&a).await;
        assert_eq!((killed.state.as_str(), killed.reason.as_str()), ("stopped", "killed by an admin"));

        // Room freed: C starts and serves.
        h.wait_state(&c, gc, "ready").await;
        for (p, g) in [(&b, gb), (&c, gc)] {
            h.client().abort_viewer(p).await.unwrap();
            h.wait_state(p, g, "stopped").await;
            h.wait_job_exit(g).await;
        }
    });
    for p in [&a, &b, &c] {
        assert!(h.own_domains(p.project()).is_empty());
    }
}
