//! Upkeep against the real daemon (stand-in jobs): ended instances' job files, logs and
//! history are pruned after the retention, each pair's newest record stays, live ones are
//! untouched; secrets rotate without stopping running jobs; SIGHUP reloads live settings.

mod common;

use std::time::Duration;

use common::{eventually, pair, report_stopped, runtime, Env};
use vrun_proto::{FaultCode, Pair};
use vrun_test_support::AgentMonitor;

fn launch(d: &AgentMonitor, rt: &tokio::runtime::Runtime, p: &Pair) -> i64 {
    common::launch(d, rt, p).1
}

#[test]
fn ended_instances_are_pruned_after_the_retention_and_the_newest_record_stays() {
    let env = Env::new();
    let rt = runtime();
    let d = env.start(&["--retention-secs", "2"]);
    let (old, live) = (pair("old", "CodeDX"), pair("live", "CodeDX"));
    let g1 = launch(&d, &rt, &old);
    env.wait_launches(1, Duration::from_secs(20));
    report_stopped(&d, &rt, &old, g1);
    let g2 = launch(&d, &rt, &old);
    let g3 = launch(&d, &rt, &live);
    let jobs_started = env.wait_launches(3, Duration::from_secs(20));
    report_stopped(&d, &rt, &old, g2);
    // Their jobs exit after reporting, as vruntask does (a job still running keeps its files).
    for (pid, file) in &jobs_started {
        if [g1, g2].iter().any(|g| file.ends_with(format!("g{g}.json"))) {
            // SAFETY: plain kill(2) of the test's own stand-in jobs.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
    let jobs = d.state_dir.join("jobs");
    for g in [g1, g2, g3] {
        assert!(jobs.join(format!("g{g}.json")).exists(), "job file of g{g} missing before the retention");
    }
    eventually("g1 and g2's job files pruned", Duration::from_secs(20), || {
        !jobs.join(format!("g{g1}.json")).exists() && !jobs.join(format!("g{g2}.log")).exists()
    });
    // The live instance is untouched, whatever its age.
    assert!(jobs.join(format!("g{g3}.json")).exists() && jobs.join(format!("g{g3}.lock")).exists());
    // The pair's newest record answers, with its history gone; the older row is gone.
    let rec = rt.block_on(d.client().viewer_status(&old)).unwrap();
    assert_eq!((rec.generation, rec.state.as_str()), (g2, "stopped"));
    assert!(rec.history.is_empty(), "history kept past the retention: {:?}", rec.history);
    let rows: i64 = rusqlite::Connection::open(d.state_dir.join("agent-monitor.sqlite3"))
        .unwrap()
        .query_row("SELECT count(*) FROM instances WHERE generation = ?1", [g1], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the older ended row was kept");
    let live_rec = rt.block_on(d.client().viewer_status(&live)).unwrap();
    assert!(!live_rec.history.is_empty(), "a live instance's history was pruned");
}

#[test]
fn rotating_the_job_key_keeps_running_jobs_and_cuts_old_admin_secrets() {
    let env = Env::new();
    let rt = runtime();
    let d = env.start(&[]);
    let p = pair("rot", "CodeDX");
    let g = launch(&d, &rt, &p);
    let jobs = env.wait_launches(1, Duration::from_secs(20));
    let spec = common::job_spec(&jobs[0].1);
    let token = spec.job_token.clone().expect("a job token");
    let job =
        vrun_proto::client::AgentMonitorClient::new(&d.url, vrun_proto::client::Credentials::Bearer(token.clone()))
            .unwrap();
    assert!(rt.block_on(job.heartbeat(&p, g)).unwrap());
    let old_admin = d.client();
    // Rotate every role's secret through the admin command.
    let out = std::process::Command::new(common::workspace_bin("agent-monitor"))
        .args(["rotate-secrets", "--url", &d.url])
        .env("AGENT_MONITOR_SECRET_FILE", d.secret("admin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "rotate-secrets: {}", String::from_utf8_lossy(&out.stderr));
    // The running job's token (old key) still works within the grace; new jobs get the new key.
    assert!(rt.block_on(job.heartbeat(&p, g)).unwrap(), "a running job lost its credentials at rotation");
    // The old admin secret is refused at once; the new one (re-read from its file) works.
    let err = rt.block_on(old_admin.list_viewers()).unwrap_err();
    assert_eq!(err.fault_code(), Some(FaultCode::NotAuthorised));
    rt.block_on(d.client().list_viewers()).unwrap();
    // New launches get tokens under the new key.
    let p2 = pair("rot2", "CodeDX");
    launch(&d, &rt, &p2);
    let jobs = env.wait_launches(2, Duration::from_secs(20));
    let token2 = common::job_spec(&jobs[1].1).job_token.unwrap();
    assert_ne!(token2.rsplit('.').next(), token.rsplit('.').next());
    // A restart keeps the old key's grace (it is on disk), so the running job survives that too.
    d.kill9();
    let d = env.start(&[]);
    let job =
        vrun_proto::client::AgentMonitorClient::new(&d.url, vrun_proto::client::Credentials::Bearer(token.clone()))
            .unwrap();
    assert!(rt.block_on(job.heartbeat(&p, g)).unwrap(), "the old key's grace did not survive a restart");
}

#[test]
fn sighup_reloads_limits_and_secrets_without_a_restart() {
    let env = Env::new();
    let rt = runtime();
    let conf = env.tmp.path().join("am.toml");
    std::fs::write(&conf, "max_viewers = 1\n").unwrap();
    let d = env.start(&["--config", conf.to_str().unwrap()]);
    launch(&d, &rt, &pair("h1", "CodeDX"));
    launch(&d, &rt, &pair("h2", "CodeDX"));
    env.wait_launches(1, Duration::from_secs(20));
    let rec = rt.block_on(d.client().viewer_status(&pair("h2", "CodeDX"))).unwrap();
    assert_eq!(rec.waiting, 1);
    // A file that does not parse changes nothing.
    std::fs::write(&conf, "max_viewers = \"many\"\n").unwrap();
    hup(&d);
    eventually("the reload failure logged", Duration::from_secs(10), || d.log().contains("reload failed"));
    assert_eq!(env.launches().len(), 1);
    // Raised: the waiting View starts at once. An admin secret replaced by hand takes effect.
    std::fs::write(&conf, "max_viewers = 3\n").unwrap();
    let old_admin = d.client();
    std::fs::write(d.secret("admin"), format!("{}\n", "b".repeat(64))).unwrap();
    hup(&d);
    assert_eq!(
        env.wait_launches(2, Duration::from_secs(20)).len(),
        2,
        "raising the limit did not start the waiting View"
    );
    let err = rt.block_on(old_admin.list_viewers()).unwrap_err();
    assert_eq!(err.fault_code(), Some(FaultCode::NotAuthorised));
    rt.block_on(d.client().list_viewers()).unwrap();
}

fn hup(d: &AgentMonitor) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
}
