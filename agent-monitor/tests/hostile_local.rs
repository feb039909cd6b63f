//! What a local user without credentials, a launcher, or a full disk can do (issue 13), each
//! against the real daemon on loopback with its own state directory.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vrun_proto::methods::LaunchViewer;
use vrun_proto::FaultCode;

fn addr(d: &Daemon) -> SocketAddr {
    d.url.trim_start_matches("http://").trim_end_matches("/RPC2").parse().unwrap()
}

fn secret(env: &Env, role: &str) -> String {
    std::fs::read_to_string(env.state_dir().join(format!("secrets/{role}.secret"))).unwrap().trim().to_string()
}

fn basic(env: &Env, role: &str) -> String {
    use base64::Engine;
    let raw = format!("{role}:{}", secret(env, role));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Waits (bounded) until the server closes `s`; how long that took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) if start.elapsed() < limit => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// One raw call; the fault code of the answer (0 when it is not a fault).
fn post(to: SocketAddr, auth: &str, body: &[u8]) -> i32 {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (fault 7) before the whole body is sent.
    let _ = s.write_all(body);
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let Some(i) = resp.find("<name>faultCode</name>") else { return 0 };
    let rest = &resp[i..];
    let start = rest.find("<int>").or(rest.find("<i4>")).unwrap();
    rest[start..].split(['>', '<']).nth(2).unwrap().parse().unwrap()
}

fn call_xml(method: &str, params: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
    )
}

#[test]
fn idle_and_half_sent_connections_are_closed() {
    let env = Env::new();
    let d = env.start(&["--header-timeout-secs", "2", "--body-timeout-secs", "2"]);
    let a = addr(&d);
    let bare = TcpStream::connect(a).unwrap();
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut bodiless = TcpStream::connect(a).unwrap();
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 500\r\n\r\n<methodCall>",
        basic(&env, "launcher")
    );
    bodiless.write_all(head.as_bytes()).unwrap();
    for (what, mut s) in [("bare connect", bare), ("slow headers", slow), ("headers without a body", bodiless)] {
        let took = closed_within(&mut s, Duration::from_secs(8));
        assert!(took.is_some(), "{what}: still open after 8 s");
    }
    assert!(d.log().contains("request body did not arrive within 2 s"), "{}", d.log());
}

/// Keeps up to `keep` idle connections open from `from` to `to` for `run`, opening a new one
/// every few milliseconds (bounded: at most `run / 2 ms` connects).
async fn flood(from: &str, to: SocketAddr, keep: usize, run: Duration) -> usize {
    let mut open = std::collections::VecDeque::new();
    let (end, mut made) = (Instant::now() + run, 0);
    while Instant::now() < end {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), sock.connect(to)).await {
            open.push_back(s);
            made += 1;
        }
        if open.len() > keep {
            open.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    made
}

#[test]
fn heartbeats_and_launches_survive_a_flood_of_idle_sockets() {
    // The daemon: 256 descriptors; 300 idle sockets made heartbeats time out.
    let env = Env::new();
    let d = start_daemon_via(
        &["prlimit", "--nofile=256:256", "--"],
        &env.state_dir(),
        &env.tmp.path().join("fake-job"),
        &env.launch_log(),
        &["--lease-secs", "4", "--heartbeat-secs", "1", "--reap-every-ms", "200"],
    );
    let launcher = d.client_as("launcher");
    let rt = runtime();
    let p = pair("flooded", "CodeDX");
    let g = rt.block_on(launcher.launch_viewer(&LaunchViewer::new(p.clone()))).unwrap().generation;
    let (_, file) = env.wait_launches(1, Duration::from_secs(10)).pop().expect("job started");
    let token = job_spec(&file).job_token.expect("job token");
    // New clients each time, so that each call needs a new connection (launchviewer is
    // one-shot; a job's kept connection may be closed under it).
    let job = || {
        vrun_proto::client::AgentMonitorClient::new(&d.url, vrun_proto::client::Credentials::Bearer(token.clone()))
            .unwrap()
    };
    let to = addr(&d);
    rt.block_on(async {
        let floods = [
            tokio::spawn(flood("127.0.0.2", to, 300, Duration::from_secs(10))),
            tokio::spawn(flood("127.0.0.1", to, 150, Duration::from_secs(10))),
        ];
        let end = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while Instant::now() < end {
            let beat = tokio::time::timeout(Duration::from_secs(3), job().heartbeat(&p, g)).await;
            assert!(matches!(beat, Ok(Ok(true))), "heartbeat {n} during the flood: {beat:?}");
            let other = pair(&format!("f{n}"), "CodeDX");
            let launch = tokio::time::timeout(
                Duration::from_secs(3),
                d.client_as("launcher").launch_viewer(&LaunchViewer::new(other)),
            )
            .await;
            assert!(matches!(launch, Ok(Ok(_))), "launch {n} during the flood: {launch:?}");
            n += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for f in floods {
            assert!(f.await.unwrap() > 300, "the flood opened more sockets than the daemon may hold");
        }
        let rec = launcher.viewer_status(&p).await.unwrap();
        assert_eq!(rec.state.as_str(), "launching", "the flooded job kept its lease: {}", rec.reason);
    });
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
}

#[test]
fn only_storeviewer_may_send_a_large_body() {
    let env = Env::new();
    let d = env.start(&["--max-call-bytes", "100000"]);
    let big = "x".repeat(200_000);
    let launch = call_xml(
        "agentMonitor.launchViewer",
        &format!(
            "<param><value><struct><member><name>project</name><value>{big}</value></member></struct></value></param>"
        ),
    );
    assert_eq!(post(addr(&d), &basic(&env, "launcher"), launch.as_bytes()), FaultCode::RequestTooLarge.code());
    // A comment cannot make another call look like storeviewer to the size check.
    let disguised = format!("<methodCall><!-- <methodName>agentMonitor.storeviewer</methodName> --><methodName>system.listMethods</methodName><params><param><value>{big}</value></param></params></methodCall>");
    assert_eq!(post(addr(&d), &basic(&env, "admin"), disguised.as_bytes()), FaultCode::RequestTooLarge.code());
    // A launcher may not store, so it is not read on either.
    let store = |db: &str| {
        call_xml(
            "agentMonitor.storeviewer",
            &format!("<param><value><struct><member><name>project</name><value>p</value></member>\
             <member><name>viewer</name><value>CodeDX</value></member><member><name>generation</name><value><int>1</int></value></member>\
             <member><name>viewerdb</name><value><base64>{db}</base64></value></member>\
             <member><name>checksum</name><value>00</value></member></struct></value></param>"),
        )
    };
    let db = "QUFB".repeat(50_000);
    assert_eq!(post(addr(&d), &basic(&env, "launcher"), store(&db).as_bytes()), FaultCode::RequestTooLarge.code());
    // The admin's large storeviewer is read and reaches the method (which refuses the checksum).
    assert_eq!(post(addr(&d), &basic(&env, "admin"), store(&db).as_bytes()), FaultCode::BadChecksum.code());
    // Values are counted while parsing: an array of nothing is refused however small.
    let empties = call_xml(
        "system.listMethods",
        &format!("<param><value><array><data>{}</data></array></value></param>", "<value/>".repeat(12_000)),
    );
    assert_eq!(post(addr(&d), &basic(&env, "admin"), empties.as_bytes()), FaultCode::MalformedRequest.code());
}

#[test]
fn shutdown_does_not_wait_for_a_half_sent_request() {
    let env = Env::new();
    let d = env.start(&["--shutdown-grace-secs", "2"]);
    let mut held = TcpStream::connect(addr(&d)).unwrap();
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 5000\r\n\r\n<methodCall>",
        basic(&env, "launcher")
    );
    held.write_all(head.as_bytes()).unwrap();
    let mut idle = TcpStream::connect(addr(&d)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let st = d.terminate();
    assert!(st.success(), "{st:?}");
    assert!(start.elapsed() < Duration::from_secs(6), "shutdown took {:?}", start.elapsed());
    assert!(closed_within(&mut idle, Duration::from_secs(1)).is_some());
}

#[test]
fn shutdown_does_not_wait_for_a_cancel_in_progress() {
    // A job that ignores SIGTERM keeps its cancel waiting out the 30 s grace in a blocking
    // task; the runtime used to wait for it after "agent-monitor stopped".
    let env = Env::new();
    let job = env.tmp.path().join("stubborn-job");
    std::fs::write(&job, "#!/bin/sh\necho \"$$ $2\" >> \"$VRUN_TEST_LAUNCH_LOG\"\ntrap '' TERM\nexec sleep 300\n")
        .unwrap();
    std::fs::set_permissions(&job, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = start_daemon(
        &env.state_dir(),
        &job,
        &env.launch_log(),
        &[
            "--lease-secs",
            "2",
            "--heartbeat-secs",
            "1",
            "--start-grace-secs",
            "1",
            "--reap-every-ms",
            "100",
            "--cancel-grace-secs",
            "30",
            "--shutdown-grace-secs",
            "2",
        ],
    );
    runtime().block_on(d.client().launch_viewer(&LaunchViewer::new(pair("stubborn", "CodeDX")))).unwrap();
    eventually("the reaper cancels the silent job", Duration::from_secs(15), || d.log().contains("cancelling job"));
    let start = Instant::now();
    assert!(d.terminate().success());
    assert!(start.elapsed() < Duration::from_secs(6), "shutdown took {:?}", start.elapsed());
}

fn store(p: &vrun_proto::Pair, generation: i64, db: &[u8]) -> vrun_proto::methods::StoreViewer {
    let checksum = agent_monitor::archives::sha256_hex(db);
    vrun_proto::methods::StoreViewer { pair: p.clone(), generation, viewerdb: db.to_vec(), checksum }
}

fn end(p: &vrun_proto::Pair, generation: i64) -> vrun_proto::methods::SetViewerState {
    let state = vrun_proto::ViewerState::Stopped;
    vrun_proto::methods::SetViewerState {
        pair: p.clone(),
        generation,
        state,
        ipaddress: None,
        domain: None,
        message: None,
    }
}

#[test]
fn db_path_names_only_an_archive_of_the_same_pair() {
    let env = Env::new();
    let d = env.start(&[]);
    let launcher = d.client_as("launcher");
    let admin = d.client();
    let (mine, theirs) = (pair("mine", "CodeDX"), pair("theirs", "CodeDX"));
    runtime().block_on(async {
        let g = admin.launch_viewer(&LaunchViewer::new(theirs.clone())).await.unwrap().generation;
        admin.store_viewer(&store(&theirs, g, b"their findings")).await.unwrap();
        let key = env.state_dir().join("secrets/jobs.key");
        let theirs_file = env.state_dir().join(format!(
            "archives/theirs/CodeDX/g{g}-{}.archive",
            agent_monitor::archives::sha256_hex(b"their findings")
        ));
        assert!(theirs_file.is_file());
        for db_path in
            [key.display().to_string(), theirs_file.display().to_string(), "1".into(), "0".into(), "x".into()]
        {
            let req = LaunchViewer { db_path: Some(db_path.clone()), ..LaunchViewer::new(mine.clone()) };
            let err = launcher.launch_viewer(&req).await.unwrap_err();
            assert_eq!(err.fault_code(), Some(FaultCode::InvalidParams), "db_path={db_path}: {err}");
        }
        // Nothing was created for the refused launches.
        let err = launcher.viewer_status(&mine).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::UnknownInstance));
        // (Waited for: on a loaded machine the one real launch's job may not have started yet.)
        assert_eq!(env.wait_launches(1, Duration::from_secs(10)).len(), 1);

        // Its own pair's version 1 is accepted, and the job is given agent-monitor's path.
        admin.set_viewer_state(&end(&theirs, g)).await.unwrap();
        let req = LaunchViewer { db_path: Some("1".into()), ..LaunchViewer::new(theirs.clone()) };
        let g2 = launcher.launch_viewer(&req).await.unwrap().generation;
        let jobs = env.wait_launches(2, Duration::from_secs(10));
        let spec = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g2).unwrap();
        assert_eq!(spec.db_path.as_deref(), Some(theirs_file.to_str().unwrap()));
    });
}

#[test]
fn a_missing_newest_archive_falls_back_to_the_next_one() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("fallback", "CodeDX");
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        c.store_viewer(&store(&p, g, b"older")).await.unwrap();
        c.store_viewer(&store(&p, g, b"newer")).await.unwrap();
        let dir = env.state_dir().join("archives/fallback/CodeDX");
        let sum = agent_monitor::archives::sha256_hex;
        std::fs::remove_file(dir.join(format!("g{g}-{}.archive", sum(b"newer")))).unwrap();
        c.set_viewer_state(&end(&p, g)).await.unwrap();
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(2, Duration::from_secs(10));
        let spec = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g2).unwrap();
        assert_eq!(std::fs::read(spec.db_path.expect("an archive is restored")).unwrap(), b"older");
    });
    assert!(d.log().contains("stored archive is missing; restoring the next older one"));
}

#[test]
fn a_damaged_secret_refuses_to_start_and_is_kept() {
    let env = Env::new();
    env.start(&[]).terminate();
    let key = env.state_dir().join("secrets/jobs.key");
    let mut damaged = std::fs::read(&key).unwrap();
    damaged[3] = 0xff;
    std::fs::write(&key, &damaged).unwrap();
    // Bounded: a daemon that accepts the damaged secret serves until killed.
    let serve = || {
        Command::new("timeout")
            .args([
                "10",
                env!("CARGO_BIN_EXE_agent-monitor"),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--libvirt-uri",
                "none",
                "--state-dir",
            ])
            .arg(env.state_dir())
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let out = serve();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("jobs.key is not UTF-8"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), damaged, "the key was kept as it was");
    // A truncated secret too: refused, not replaced.
    std::fs::write(&key, "abc\n").unwrap();
    std::fs::write(env.state_dir().join("secrets/admin.secret"), "short\n").unwrap();
    let err = String::from_utf8_lossy(&serve().stderr).into_owned();
    assert!(err.contains("shorter than 32 characters"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "abc\n");
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn state_files_are_owner_only_whatever_the_umask() {
    let env = Env::new();
    let state = env.state_dir();
    // A state directory made by hand (or restored from a backup) with umask 022.
    std::fs::create_dir_all(state.join("jobs")).unwrap();
    for d in [&state, &state.join("jobs")] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let d = start_daemon_via(
        &["sh", "-c", "umask 022; exec \"$@\"", "sh"],
        &state,
        &env.tmp.path().join("fake-job"),
        &env.launch_log(),
        &[],
    );
    let p = pair("modes", "CodeDX");
    runtime().block_on(async {
        let g = d.client().launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        d.client().store_viewer(&store(&p, g, b"db")).await.unwrap();
    });
    env.wait_launches(1, Duration::from_secs(10));
    for dir in ["", "jobs", "secrets", "archives", "archives/modes", "archives/modes/CodeDX"] {
        assert_eq!(mode(&state.join(dir)), 0o700, "{dir}/");
    }
    for file in [
        "agent-monitor.sqlite3",
        "agent-monitor.sqlite3-wal",
        "agent-monitor.sqlite3-shm",
        "secrets/jobs.key",
        "jobs/g1.json",
        "jobs/g1.log",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert!(d.log().contains("tightened permissions"), "{}", d.log());
}

#[test]
fn a_failed_archive_write_leaves_no_temp_file() {
    let env = Env::new();
    let leftover = env.state_dir().join("archives/old/CodeDX/g1-ab.tmp");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"half a database").unwrap();
    let d = env.start(&[]);
    assert!(!leftover.exists(), "a crash's temp file is removed at start");
    let archives = env.state_dir().join("archives/full/CodeDX");
    let _disk = Tmpfs::mount(&archives, "256k");
    let p = pair("full", "CodeDX");
    runtime().block_on(async {
        let g = d.client().launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let err = d.client().store_viewer(&store(&p, g, &vec![7u8; 600_000])).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::Internal), "{err}");
    });
    let left: Vec<_> = std::fs::read_dir(&archives).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "the failed write left {left:?}");
}

#[test]
fn a_cancel_in_the_spawn_window_waits_for_the_start_and_stops_its_job() {
    use agent_monitor::launcher::{Launcher, ProcessLauncher};
    let env = Env::new();
    // The stand-in job records itself here (each test is a process of its own under nextest).
    std::env::set_var("VRUN_TEST_LAUNCH_LOG", env.launch_log());
    let launcher = std::sync::Arc::new(
        ProcessLauncher::new(env.tmp.path().join("jobs"), env.tmp.path().join("fake-job")).unwrap(),
    );
    // A generation that ended before its start came up is not started.
    launcher.start(&sample_job("race", 1), &|| false).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(env.launches().is_empty(), "{:?}", env.launches());
    assert!(!env.tmp.path().join("jobs/g1.json").exists(), "a job file was written for a generation that ended");
    // The reaper's cancel lands between the start's check and its spawn.
    let l = std::sync::Arc::clone(&launcher);
    let start = std::thread::spawn(move || {
        l.start(&sample_job("race", 2), &|| {
            std::thread::sleep(Duration::from_millis(500));
            true
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    launcher.cancel(2, Duration::from_secs(5));
    start.join().unwrap().unwrap();
    let started = env.wait_launches(1, Duration::from_secs(5));
    assert_eq!(started.len(), 1);
    eventually("the job started in the window is stopped", Duration::from_secs(5), || !pid_alive(started[0].0));
}

#[test]
fn a_second_start_of_a_running_job_leaves_its_job_file_alone() {
    use agent_monitor::launcher::{Launcher, ProcessLauncher};
    let env = Env::new();
    std::env::set_var("VRUN_TEST_LAUNCH_LOG", env.launch_log());
    let launcher = ProcessLauncher::new(env.tmp.path().join("jobs"), env.tmp.path().join("fake-job")).unwrap();
    launcher.start(&sample_job("race", 3), &|| true).unwrap();
    let started = env.wait_launches(1, Duration::from_secs(5));
    assert_eq!(started.len(), 1);
    let file = env.tmp.path().join("jobs/g3.json");
    let read = std::fs::read(&file).unwrap();
    // The job file is written in place: a start that wrote it while the job could be reading
    // it would hand that job a torn description.
    let other = vrun_proto::job::JobSpec { apikey: "cd".repeat(32), ..sample_job("race", 3) };
    launcher.start(&other, &|| true).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.launches().len(), 1, "{:?}", env.launches());
    assert_eq!(std::fs::read(&file).unwrap(), read, "the running job's description was rewritten");
    launcher.cancel(3, Duration::from_secs(5));
    assert!(!pid_alive(started[0].0));
}

#[test]
fn a_cancel_that_cannot_read_proc_retries_until_the_job_is_gone() {
    let env = Env::new();
    let d = env.start(&[
        "--lease-secs",
        "3",
        "--heartbeat-secs",
        "1",
        "--start-grace-secs",
        "3",
        "--reap-every-ms",
        "100",
        "--cancel-grace-secs",
        "1",
    ]);
    runtime().block_on(d.client().launch_viewer(&LaunchViewer::new(pair("noproc", "CodeDX")))).unwrap();
    let (pid, _) = env.wait_launches(1, Duration::from_secs(10))[0].clone();
    // Descriptors 0-2 are open, so a soft limit of 3 makes every open fail with EMFILE.
    let daemon = d.child.id().to_string();
    let limit = |soft: &str| {
        assert!(Command::new("prlimit")
            .args(["--pid", &daemon, &format!("--nofile={soft}:")])
            .status()
            .unwrap()
            .success())
    };
    limit("3");
    eventually("the cancel fails to read /proc", Duration::from_secs(15), || {
        d.log().contains("cannot read /proc to find the job")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(pid_alive(pid), "the job is not taken for gone");
    limit("1024");
    eventually("the retried cancel stops the job", Duration::from_secs(10), || !pid_alive(pid));
}

#[test]
fn a_late_store_of_an_older_generation_is_kept_as_an_older_version() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let p = pair("late", "CodeDX");
    runtime().block_on(async {
        let g1 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        c.set_viewer_state(&end(&p, g1)).await.unwrap();
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        c.store_viewer(&store(&p, g2, b"newer run")).await.unwrap();
        // g1's job could store only now (agent-monitor was away, the disk was full).
        c.store_viewer(&store(&p, g1, b"older run")).await.unwrap();
        let err = c.store_viewer(&store(&p, g2 + 5, b"never ran")).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::UnknownInstance));
        c.set_viewer_state(&end(&p, g2)).await.unwrap();
        let g3 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(3, Duration::from_secs(10));
        let spec = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g3).unwrap();
        assert_eq!(std::fs::read(spec.db_path.unwrap()).unwrap(), b"newer run", "the newer run's work is restored");
    });
    let kept = std::fs::read_dir(env.state_dir().join("archives/late/CodeDX")).unwrap().count();
    assert_eq!(kept, 2, "both versions are kept");
}

#[test]
fn a_full_disk_costs_no_lease() {
    let env = Env::new();
    let _disk = Tmpfs::mount(&env.state_dir(), "16m");
    let d =
        env.start(&["--lease-secs", "3", "--heartbeat-secs", "1", "--start-grace-secs", "3", "--reap-every-ms", "200"]);
    let c = d.client();
    let p = pair("fulldisk", "CodeDX");
    let rt = runtime();
    let g = rt.block_on(c.launch_viewer(&LaunchViewer::new(p.clone()))).unwrap().generation;
    // Fill the disk, then heartbeat until the store's writes fail (the WAL may hold a few).
    let filler = env.state_dir().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let start = Instant::now();
    rt.block_on(async {
        let mut n = 0;
        while !d.log().contains("lease renewed in memory") {
            assert!(start.elapsed() < Duration::from_secs(30), "the store never failed:\n{}", d.log());
            let beat = c.heartbeat(&p, g).await;
            assert!(matches!(beat, Ok(true)), "heartbeat {n} on a full disk: {beat:?}");
            n += 1;
        }
        // Past the lease on memory alone, then space returns.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            assert!(matches!(c.heartbeat(&p, g).await, Ok(true)));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        std::fs::remove_file(&filler).unwrap();
        assert!(matches!(c.heartbeat(&p, g).await, Ok(true)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rec = c.viewer_status(&p).await.unwrap();
        assert_eq!(rec.state.as_str(), "launching", "the lease survived the full disk: {}", rec.reason);
    });
}

#[test]
fn the_sweep_stores_an_output_disk_its_job_could_not_store() {
    let env = Env::new();
    let d = env.start(&["--sweep-secs", "1"]);
    let c = d.client();
    let p = pair("unstored", "CodeDX");
    let g = runtime().block_on(c.launch_viewer(&LaunchViewer::new(p.clone()))).unwrap().generation;
    // What vruntask leaves when storeviewer kept failing: its output disk, beside the job file.
    let jobs = env.state_dir().join("jobs");
    let disk = jobs.join(format!("g{g}.unstored"));
    std::fs::File::create(&disk).unwrap().set_len(64 * 1024).unwrap();
    let sha = vrun_proto::outdisk::write_saved(&disk, b"triage work").unwrap();
    std::fs::write(jobs.join("g999.unstored"), b"not a disk").unwrap();
    let archive = env.state_dir().join(format!("archives/unstored/CodeDX/g{g}-{sha}.archive"));
    eventually("the sweep stores the disk", Duration::from_secs(15), || archive.is_file());
    assert_eq!(std::fs::read(&archive).unwrap(), b"triage work");
    eventually("the disk is removed once stored", Duration::from_secs(5), || {
        !jobs.join(format!("g{g}.unstored")).exists()
    });
    let rec = runtime().block_on(c.viewer_status(&p)).unwrap();
    assert!(
        rec.history.iter().any(|t| t.reason.contains("which the job could not store, was stored by the sweep")),
        "{:#?}",
        rec.history
    );
    assert!(jobs.join("g999.unstored").exists(), "a disk of an unknown generation is left for the admin");
}

#[test]
fn large_bodies_are_read_one_at_a_time_and_small_calls_pass_them() {
    let env = Env::new();
    let d = env.start(&["--max-call-bytes", "100000", "--max-large-requests", "1", "--body-timeout-secs", "3"]);
    let body = call_xml(
        "agentMonitor.storeviewer",
        &format!("<param><value><struct><member><name>viewerdb</name><value><base64>{}</base64></value></member></struct></value></param>", "QUFB".repeat(50_000)),
    );
    // The first large body stops half-way and holds the only permit until its deadline.
    let mut first = TcpStream::connect(addr(&d)).unwrap();
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        basic(&env, "admin"),
        body.len()
    );
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&body.as_bytes()[..150_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let second = std::thread::spawn({
        let (auth, body, to) = (basic(&env, "admin"), body.clone(), addr(&d));
        move || {
            let code = post(to, &auth, body.as_bytes());
            (code, start.elapsed())
        }
    });
    // A small call is not held up.
    let t = Instant::now();
    runtime().block_on(d.client().list_viewers()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "a small call waited {:?}", t.elapsed());
    let (code, waited) = second.join().unwrap();
    assert_eq!(code, FaultCode::InvalidParams.code(), "read in full once the permit was free");
    assert!(waited >= Duration::from_secs(2), "the second large body was read beside the first ({waited:?})");
}

#[test]
fn accept_errors_back_off() {
    let env = Env::new();
    let d = env.start(&[]);
    let daemon = d.child.id().to_string();
    let limit = |soft: &str| {
        assert!(Command::new("prlimit")
            .args(["--pid", &daemon, &format!("--nofile={soft}:")])
            .status()
            .unwrap()
            .success())
    };
    // The libvirt event listener starts beside the first requests; GLib aborts the process
    // when it cannot make its wake-up pipe, so the limit comes only after it is up.
    eventually("the lifecycle listener is up", Duration::from_secs(10), || {
        d.log().contains("listening to libvirt lifecycle events")
    });
    limit("3");
    let start = Instant::now();
    let pending: Vec<_> = (0..5).map(|_| TcpStream::connect(addr(&d)).unwrap()).collect();
    eventually_or(
        "accept fails",
        Duration::from_secs(10),
        || d.log().contains("accept error; backing off"),
        || format!("--- agent-monitor:\n{}", d.log()),
    );
    std::thread::sleep(Duration::from_secs(2));
    // Logged at most once a second, however often accept fails.
    let warnings = d.log().matches("accept error; backing off").count() as u64;
    assert!(warnings <= start.elapsed().as_secs() + 1, "{warnings} accept warnings in {:?}", start.elapsed());
    limit("1024");
    drop(pending);
    let rt = runtime();
    // Within a backoff step or two (a call in the first moments may still meet a failure
    // from the low limit, such as a reader connection that could not be opened).
    let last = std::cell::RefCell::new(String::new());
    eventually_or(
        "serving again",
        Duration::from_secs(10),
        || match rt.block_on(d.client().list_viewers()) {
            Ok(_) => true,
            Err(e) => {
                *last.borrow_mut() = e.to_string();
                false
            }
        },
        || format!("last error: {}\n--- agent-monitor:\n{}", last.borrow(), d.log()),
    );
}
