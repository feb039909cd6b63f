//! The lifecycle rules: fencing by generation, lease expiry, relaunch after stop, and
//! stored viewer databases.

mod common;

use std::time::{Duration, Instant};

use common::{job_spec, pair, pid_alive, runtime, Env};
use vrun_proto::methods::{LaunchViewer, SetViewerState, StoreViewer};
use vrun_proto::{FaultCode, ViewerState};

fn report(p: &vrun_proto::Pair, generation: i64, state: ViewerState, ip: Option<&str>) -> SetViewerState {
    SetViewerState { pair: p.clone(), generation, state, ipaddress: ip.map(String::from), domain: None, message: None }
}

#[test]
fn stale_generation_is_fenced_off() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("fence", "CodeDX");
    runtime().block_on(async {
        let g1 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let door = c.viewer_status(&p).await.unwrap().urluuid;
        c.set_viewer_state(&report(&p, g1, ViewerState::Booting, None)).await.unwrap();
        c.set_viewer_state(&report(&p, g1, ViewerState::Failed, None)).await.unwrap();
        let second = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap();
        assert!(second.launched && second.generation > g1, "{second:?}");

        // The old job reports: refused, and nothing changes.
        let err = c.set_viewer_state(&report(&p, g1, ViewerState::Ready, Some("10.0.0.9:80"))).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::StaleGeneration), "{err}");
        let rec = c.viewer_status(&p).await.unwrap();
        assert_eq!((rec.generation, rec.state.as_str(), rec.address.as_str()), (second.generation, "launching", ""));
        assert!(!c.heartbeat(&p, g1).await.unwrap(), "an old generation must be told to stop");

        // Backwards moves are illegal; forward ones are recorded in the history.
        c.set_viewer_state(&report(&p, second.generation, ViewerState::Ready, Some("127.0.0.1:4000"))).await.unwrap();
        let err = c.set_viewer_state(&report(&p, second.generation, ViewerState::Booting, None)).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::IllegalTransition));
        let rec = c.viewer_status(&p).await.unwrap();
        let moves: Vec<_> = rec.history.iter().map(|t| (t.from.as_str(), t.to.as_str())).collect();
        assert_eq!(moves, [("", "launching"), ("launching", "ready")]);
        let avail = c.is_viewer_available(&p).await.unwrap();
        assert!(avail.ready && avail.address == "127.0.0.1:4000" && avail.apikey.len() == 64);
        assert!(avail.urluuid.starts_with("proxy-"));
        assert_eq!(avail.urluuid, door, "a relaunch keeps the pair's front door id (bookmarks survive)");
    });
}

#[test]
fn silent_job_loses_its_lease_and_the_pair_is_freed() {
    let env = Env::new();
    let d = env.start(&[
        "--lease-secs",
        "2",
        "--heartbeat-secs",
        "1",
        "--start-grace-secs",
        "2",
        "--reap-every-ms",
        "100",
        "--cancel-grace-secs",
        "1",
    ]);
    let c = d.client();
    let silent = pair("silent", "CodeDX");
    let alive = pair("alive", "CodeDX");
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(silent.clone())).await.unwrap().generation;
        let ga = c.launch_viewer(&LaunchViewer::new(alive.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(2, Duration::from_secs(20));
        let silent_pid = jobs.iter().find(|(_, f)| job_spec(f).generation == g).unwrap().0;
        // Heartbeat one pair for longer than the lease; leave the other silent.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            assert!(c.heartbeat(&alive, ga).await.unwrap());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let rec = c.viewer_status(&silent).await.unwrap();
        assert_eq!(rec.state, "failed", "{rec:?}");
        assert!(rec.reason.contains("lease expired"), "{}", rec.reason);
        assert_eq!(c.viewer_status(&alive).await.unwrap().state, "launching");
        // The job was cancelled (its process is gone) and the pair is free for a new launch.
        let end = Instant::now() + Duration::from_secs(10);
        while pid_alive(silent_pid) && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!pid_alive(silent_pid), "expired job still running");
        let again = c.launch_viewer(&LaunchViewer::new(silent.clone())).await.unwrap();
        assert!(again.launched && again.generation > g);
    });
}

#[test]
fn launch_while_stopping_is_served_after_the_stop() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("restart", "CodeDX");
    runtime().block_on(async {
        let g1 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        c.set_viewer_state(&report(&p, g1, ViewerState::Ready, Some("127.0.0.1:4001"))).await.unwrap();
        c.abort_viewer(&p).await.unwrap();
        assert!(!c.heartbeat(&p, g1).await.unwrap(), "abort must reach the job through its heartbeat");
        let queued = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap();
        assert_eq!(
            (queued.state, queued.generation, queued.launched, queued.queued),
            (ViewerState::Stopping, g1, false, true)
        );
        assert!(!c.is_viewer_available(&p).await.unwrap().ready);

        c.set_viewer_state(&report(&p, g1, ViewerState::Stopped, None)).await.unwrap();
        let rec = c.viewer_status(&p).await.unwrap();
        assert!(rec.generation > g1, "the queued launch was not served: {rec:?}");
        assert_eq!(rec.state, "launching");
        assert!(rec.history[0].reason.contains("while generation"), "{:?}", rec.history);
    });
    let jobs = env.wait_launches(2, Duration::from_secs(20));
    let gens: Vec<i64> = jobs.iter().map(|(_, f)| job_spec(f).generation).collect();
    assert_eq!(gens.len(), 2, "one job per generation: {gens:?}");
}

#[test]
fn storeviewer_keeps_the_newest_versions_and_restores_the_newest() {
    let env = Env::new();
    let d = env.start(&["--archives-keep", "3"]);
    let c = d.client();
    let p = pair("store", "CodeDX");
    let archives = env.state_dir().join("archives/store/CodeDX");
    let count = || std::fs::read_dir(&archives).map(|r| r.count()).unwrap_or(0);
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let mut last = Vec::new();
        for i in 0..5u8 {
            last = vec![i; 1000 + usize::from(i)];
            let sum = hex_sha256(&last);
            c.store_viewer(&StoreViewer { pair: p.clone(), generation: g, viewerdb: last.clone(), checksum: sum })
                .await
                .unwrap();
        }
        assert_eq!(count(), 3, "only the newest three versions are kept");

        // A corrupt upload is refused and stores nothing.
        let bad = StoreViewer { pair: p.clone(), generation: g, viewerdb: vec![9; 10], checksum: hex_sha256(b"other") };
        let err = c.store_viewer(&bad).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::BadChecksum));
        assert_eq!(count(), 3);

        // Stop, launch again: the new job restores the newest archive.
        c.set_viewer_state(&report(&p, g, ViewerState::Stopped, None)).await.unwrap();
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let stale = StoreViewer { pair: p.clone(), generation: g, viewerdb: vec![1], checksum: hex_sha256(&[1]) };
        // A late store of the older generation is kept as an older version (hostile_local.rs).
        c.store_viewer(&stale).await.unwrap();
        let jobs = env.wait_launches(2, Duration::from_secs(20));
        let spec = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g2).unwrap();
        let restored = std::fs::read(spec.db_path.expect("db_path of the newest archive")).unwrap();
        assert_eq!(restored, last);
    });
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn results_are_pushed_once_per_generation() {
    use vrun_proto::methods::{ClaimPush, PushDone, PushStatus};
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("push", "CodeDX");
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let claim = |sum: &str, generation| ClaimPush {
            pair: p.clone(),
            generation,
            checksum: sum.into(),
            package: Some("pkg".into()),
        };
        let done = |sum: &str, generation, ok| PushDone { pair: p.clone(), generation, checksum: sum.into(), ok };
        let a = hex_sha256(b"results A");
        let b = hex_sha256(b"results B");
        assert_eq!(c.claim_push(&claim(&a, g)).await.unwrap(), PushStatus::Claimed);
        assert_eq!(c.claim_push(&claim(&a, g)).await.unwrap(), PushStatus::Pushing, "second caller waits");
        assert_eq!(c.claim_push(&claim(&b, g)).await.unwrap(), PushStatus::Claimed, "other results are independent");
        c.push_done(&done(&b, g, false)).await.unwrap();
        assert_eq!(c.claim_push(&claim(&b, g)).await.unwrap(), PushStatus::Claimed, "a failed push can be retried");
        c.push_done(&done(&a, g, true)).await.unwrap();
        assert_eq!(c.claim_push(&claim(&a, g)).await.unwrap(), PushStatus::Done);
        // A new generation is a new viewer: it needs the results again.
        c.set_viewer_state(&report(&p, g, ViewerState::Failed, None)).await.unwrap();
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        assert_eq!(c.claim_push(&claim(&a, g2)).await.unwrap(), PushStatus::Claimed);
        let err = c.claim_push(&claim(&a, g)).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::StaleGeneration));
    });
}

#[test]
fn a_job_that_cannot_start_fails_its_instance_and_frees_the_pair() {
    let env = Env::new();
    // The job command is gone (a broken install).
    std::fs::remove_file(env.tmp.path().join("fake-job")).unwrap();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("nostart", "CodeDX");
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let mut rec = c.viewer_status(&p).await.unwrap();
        for _ in 0..100 {
            if rec.state == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            rec = c.viewer_status(&p).await.unwrap();
        }
        assert_eq!(rec.state, "failed");
        assert!(rec.reason.contains("could not be started") && rec.reason.contains("fake-job"), "{}", rec.reason);
        let again = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap();
        assert!(again.launched && again.generation > g, "the pair is free again");
    });
}

#[test]
fn vruntask_refuses_a_malformed_job_in_one_line_and_frees_the_pair() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("badjob", "CodeDX");
    let g = runtime().block_on(c.launch_viewer(&LaunchViewer::new(p.clone()))).unwrap().generation;
    let jobs = env.wait_launches(1, Duration::from_secs(20));
    // The real job file, damaged: an apikey that is not 64 hex digits.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&jobs[0].1).unwrap()).unwrap();
    v["apikey"] = serde_json::json!("$(reboot)");
    let bad = env.tmp.path().join("bad-job.json");
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = std::process::Command::new(common::workspace_bin("vruntask"))
        .arg("run")
        .arg(&bad)
        .env("VRUN_ACCEL", "tcg")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "exit code 2 = bad job");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("apikey"), "{err}");
    let rec = runtime().block_on(c.viewer_status(&p)).unwrap();
    assert_eq!((rec.generation, rec.state.as_str()), (g, "failed"));
    assert!(rec.reason.contains("vruntask refused its job"), "{}", rec.reason);
    // Not even JSON: still one line and exit 2, and nothing to report to.
    std::fs::write(&bad, b"\xff\xfe not json").unwrap();
    let out = std::process::Command::new(common::workspace_bin("vruntask")).arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
