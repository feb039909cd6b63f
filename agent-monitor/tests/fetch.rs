//! No shared filesystem: a job fetches its description (`fetchJob`) and the database to
//! restore (`fetchViewerDb`, in bounded chunks) with its own token, and nothing else; bad
//! requests are refused with the documented faults and change nothing. A vruntask meeting a
//! description newer than it knows refuses it by its version and frees the pair.

mod common;

use std::time::Duration;

use common::{job_spec, pair, runtime, Env};
use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::methods::{FetchViewerDb, LaunchViewer, SetViewerState, StoreViewer};
use vrun_proto::{FaultCode, ViewerState};

fn fault<T: std::fmt::Debug>(r: Result<T, vrun_proto::client::ClientError>) -> Option<FaultCode> {
    r.unwrap_err().fault_code()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn a_job_fetches_its_own_description_and_database_and_nothing_else() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("fetch", "CodeDX");
    runtime().block_on(async {
        let g1 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        // 9 MiB and a bit: more than two of the largest chunks.
        let db: Vec<u8> = (0..(9 << 20) + 123).map(|i: u32| (i % 251) as u8).collect();
        c.store_viewer(&StoreViewer { pair: p.clone(), generation: g1, viewerdb: db.clone(), checksum: sha(&db) })
            .await
            .unwrap();
        c.set_viewer_state(&SetViewerState {
            pair: p.clone(),
            generation: g1,
            state: ViewerState::Stopped,
            ipaddress: None,
            domain: None,
            message: None,
        })
        .await
        .unwrap();
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(2, Duration::from_secs(20));
        let written = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g2).unwrap();
        let token = written.job_token.clone().unwrap();
        let job = AgentMonitorClient::new(&d.url, Credentials::Bearer(token)).unwrap();

        let fetched = vrun_proto::job::parse(job.fetch_job(&p, g2).await.unwrap().as_bytes()).unwrap();
        assert_eq!(fetched.version, vrun_proto::job::JOB_VERSION);
        assert_eq!((fetched.generation, &fetched.apikey, &fetched.db_path), (g2, &written.apikey, &written.db_path));
        assert_eq!(fetched.db_sha256.as_deref(), Some(sha(&db).as_str()));
        assert_eq!(fetched.db_size, Some(db.len() as u64));
        assert!(fetched.platform_name.is_some(), "{fetched:?}");

        let mut got = Vec::new();
        while got.len() < db.len() {
            let req = FetchViewerDb { pair: p.clone(), generation: g2, offset: got.len() as i64, length: 4 << 20 };
            let chunk = job.fetch_viewer_db(&req).await.unwrap();
            assert_eq!(chunk.size, db.len() as i64);
            assert!(!chunk.data.is_empty() && chunk.data.len() <= 4 << 20);
            got.extend_from_slice(&chunk.data);
        }
        assert_eq!(sha(&got), sha(&db), "the chunks are the archive");

        let req = |generation, offset, length| FetchViewerDb { pair: p.clone(), generation, offset, length };
        // Bounded chunks, offsets inside the archive.
        assert_eq!(fault(job.fetch_viewer_db(&req(g2, 0, (4 << 20) + 1)).await), Some(FaultCode::InvalidParams));
        assert_eq!(fault(job.fetch_viewer_db(&req(g2, 0, 0)).await), Some(FaultCode::InvalidParams));
        assert_eq!(fault(job.fetch_viewer_db(&req(g2, -1, 10)).await), Some(FaultCode::InvalidParams));
        assert_eq!(fault(job.fetch_viewer_db(&req(g2, db.len() as i64 + 1, 10)).await), Some(FaultCode::InvalidParams));
        // Its token speaks for its own generation only, and launchers may not fetch jobs.
        assert_eq!(fault(job.fetch_job(&p, g1).await), Some(FaultCode::NotAuthorised));
        assert_eq!(fault(job.fetch_viewer_db(&req(g1, 0, 10)).await), Some(FaultCode::NotAuthorised));
        assert_eq!(fault(d.client_as("launcher").fetch_job(&p, g2).await), Some(FaultCode::NotAuthorised));
        // A stale generation (admin may ask) and one never launched.
        assert_eq!(fault(c.fetch_job(&p, g1).await), Some(FaultCode::StaleGeneration));
        assert_eq!(fault(c.fetch_job(&p, g2 + 5).await), Some(FaultCode::UnknownInstance));
        // An ended instance: its VM must not start.
        c.set_viewer_state(&SetViewerState {
            pair: p.clone(),
            generation: g2,
            state: ViewerState::Failed,
            ipaddress: None,
            domain: None,
            message: None,
        })
        .await
        .unwrap();
        assert_eq!(fault(job.fetch_job(&p, g2).await), Some(FaultCode::IllegalTransition));
        let rec = c.viewer_status(&p).await.unwrap();
        assert_eq!((rec.generation, rec.state.as_str()), (g2, "failed"), "a refused fetch changes nothing");
    });
}

#[test]
fn vruntask_refuses_a_newer_job_version_by_name_and_frees_the_pair() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("version", "CodeDX");
    let g = runtime().block_on(c.launch_viewer(&LaunchViewer::new(p.clone()))).unwrap().generation;
    let jobs = env.wait_launches(1, Duration::from_secs(20));
    // What a newer agent-monitor would write: a higher version with a member this one lacks.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&jobs[0].1).unwrap()).unwrap();
    v["version"] = serde_json::json!(vrun_proto::job::JOB_VERSION + 1);
    v["gpus"] = serde_json::json!(1);
    let newer = env.tmp.path().join("newer-job.json");
    std::fs::write(&newer, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = std::process::Command::new(common::workspace_bin("vruntask"))
        .arg("run")
        .arg(&newer)
        .env("VRUN_ACCEL", "tcg")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "exit code 2 = bad job");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("version {}", vrun_proto::job::JOB_VERSION + 1)) && err.contains("upgrade vruntask"),
        "{err}"
    );
    let rec = runtime().block_on(c.viewer_status(&p)).unwrap();
    assert_eq!((rec.generation, rec.state.as_str()), (g, "failed"));
    assert!(rec.reason.contains("upgrade vruntask"), "{}", rec.reason);
}
