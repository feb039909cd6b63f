//! The SWAMP drop-in: SWAMP's launchviewer invocation on the command line, and a real
//! MariaDB whose `launch_viewer` procedure runs launchviewer through the vrun_launchviewer
//! UDF, against the real agent-monitor with the host-job stand-in for vruntask (a real
//! viewer process on the host; see common/mod.rs). The same calls on real VMs are in
//! swamp_vm.rs.

mod common;
mod swamp;

use std::time::{Duration, Instant};

use common::*;
use swamp::*;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Findings of the viewer project behind `url`, as (total, messages).
fn findings_at(url: &str, apikey: &str) -> (i64, Vec<String>) {
    let (base, id) = split_url(url);
    let v = api_get(&base, apikey, &format!("projects/{id}/findings?per_page=5000"));
    let msgs = v["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().to_owned()).collect();
    (v["total"].as_i64().unwrap(), msgs)
}

/// The job description agent-monitor wrote for `project` (exactly one).
fn job_of(env: &Env, project: &str) -> serde_json::Value {
    let jobs: Vec<serde_json::Value> = env
        .settled_launches()
        .iter()
        .map(|(_, f)| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .filter(|j: &serde_json::Value| j["project"] == project)
        .collect();
    assert_eq!(jobs.len(), 1, "launches of {project}: {jobs:?}");
    jobs.into_iter().next().unwrap()
}

#[test]
fn swamp_invocation_is_accepted_as_is_and_puts_every_file_into_one_view() {
    let env = Env::start(Mode::Normal);
    let a = leak(env.file("a.xml", &scarf("cppcheck", "alpha", 2)));
    let b = leak(env.file("b.xml", &scarf("clang-sa", "beta", 3)));
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    let src = leak(env.file("src.zip", &zip));
    #[rustfmt::skip]
    let args = [
        "--viewer_name", "CodeDX", "--project", "5d0f-proj", "--invocation_cmd", "/bin/true x",
        "--viewer_checksum", "abc", "--viewer_db_path", "/nonexistent/db.tgz", "--viewer_db_checksum", "def",
        "--package", "curl-7.1", "--tool_name", "cppcheck", "--source_archive_path", src,
        "--package_type", "C/C++", "--file_path", a, "--file_path", b, "--user_uuid", "u-1", "--wait", "120",
    ];
    let url = env.launchviewer(&args).ready_url();
    let job = env.only_job();
    assert_eq!(job["users"], serde_json::json!(["u-1"]), "{job}");
    let (total, msgs) = findings_at(&url, job["apikey"].as_str().unwrap());
    assert_eq!(total, 5, "{msgs:?}");
    assert!(msgs.contains(&"alpha finding 2".to_owned()) && msgs.contains(&"beta finding 3".to_owned()), "{msgs:?}");
    assert_eq!(env.imports(job["generation"].as_i64().unwrap()), 1, "two files must be one import");
    let projects = api_get(&split_url(&url).0, job["apikey"].as_str().unwrap(), "projects");
    assert_eq!(projects["projects"][0]["name"], "curl-7.1");
}

#[test]
fn swamp_invocation_with_a_hostile_package_name_is_one_error_line_and_launches_nothing() {
    let env = Env::start(Mode::Normal);
    let a = leak(env.file("a.xml", &scarf("cppcheck", "alpha", 1)));
    let marker = env.tmp.path().join("pwned");
    let payload = leak(format!("x$(touch {})", marker.display()));
    for bad in ["it's", "a;b", payload] {
        let r = env.launchviewer(&["--viewer_name", "CodeDX", "--project", "p1", "--package", bad, "--file_path", a]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.line().starts_with("ERROR package name"), "{r:?}");
        // SWAMP's row mode refuses it the same way, before the database is even looked at.
        let r = env.launchviewer(&[
            "--viewer_name",
            "CodeDX",
            "--project",
            "p1",
            "--viewer_uuid",
            "vi-1",
            "--package",
            bad,
            "--file_path",
            a,
        ]);
        assert!(r.line().starts_with("ERROR package name"), "{r:?}");
    }
    assert!(!marker.exists(), "a package name ran a command");
    assert!(env.launches().is_empty(), "a refused View launched a viewer");
    // A row uuid without a database to record it in is a usage error, not a launch.
    let r =
        env.launchviewer(&["--viewer_name", "CodeDX", "--project", "p1", "--viewer_uuid", "vi-1", "--file_path", a]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.line().contains("--db-config"), "{r:?}");
    assert!(env.launches().is_empty());
}

/// Cold CALL with two SCARF files → at once; the row reaches "Viewer is up" with a URL;
/// both files are in the viewer; a second CALL is warm; hostile package names are refused.
#[test]
fn call_launch_viewer_cold_then_warm_and_hostile_names_refused() {
    let env = Env::start(Mode::Normal);
    let db = Db::start(&env.url, &env.secret("launcher"));
    let proj = "11111111-2222-3333-4444-555555555555";
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 2));
    let f2 = db.results_file("r2.xml", &scarf("clang-sa", "beta", 3));
    db.result("ar-1", proj, &f1, Some("curl-7.1"));
    db.result("ar-2", proj, &f2, Some("curl-7.1"));

    let cold = db.call("ar-1,ar-2", "user-1", proj);
    assert_eq!(cold.return_string, "SUCCESS", "{cold:?}");
    assert!(cold.took < Duration::from_secs(10), "the CALL waited for the View: {cold:?}");
    let (status, code, address, url) = db.wait_row(proj, "Viewer is up");
    assert_eq!(code, "2");
    assert!(url.starts_with("http://127.0.0.1:") && url.starts_with(&format!("http://{address}/proxy-")), "{url}");
    let job = job_of(&env, proj);
    let (total, msgs) = findings_at(&url, job["apikey"].as_str().unwrap());
    assert_eq!(total, 5, "{status}: {msgs:?}");
    assert!(msgs.contains(&"alpha finding 1".to_owned()) && msgs.contains(&"beta finding 3".to_owned()), "{msgs:?}");
    db.wait_finishers_gone();
    let generation = job["generation"].as_i64().unwrap();
    assert_eq!(env.imports(generation), 1);

    // Warm: answered with the URL at once, same row, no second launch or import.
    let warm = db.call("ar-1,ar-2", "user-1", proj);
    assert_eq!((warm.return_string.as_str(), warm.return_url.as_str()), ("SUCCESS", url.as_str()), "{warm:?}");
    assert_eq!(warm.instance, cold.instance);
    assert_eq!(db.row(proj).unwrap().0, "Viewer is up");
    assert!(db.finishers().is_empty(), "a warm View left a background process");
    assert_eq!(env.imports(generation), 1, "the same results were imported again");
    assert_eq!(env.settled_launches().len(), 1);

    // Hostile package names: an ERROR string, nothing launched, nothing run.
    let marker = db.root.join("pwned");
    let hostile = ["it's", "a; rm -rf /", &format!("$(touch {})", marker.display())].map(str::to_owned);
    for (i, bad) in hostile.iter().enumerate() {
        let p = format!("hostile-{i}");
        db.result(&format!("ar-h{i}"), &p, &f1, Some(bad));
        let c = db.call(&format!("ar-h{i}"), "user-1", &p);
        assert!(c.return_string.starts_with("ERROR package name"), "{bad}: {c:?}");
        let row = db.row(&p).unwrap();
        assert!(row.0.starts_with("Unable to launch viewer: package name"), "{row:?}");
        assert_eq!(row.3, "NULL");
    }
    assert!(!marker.exists(), "a package name ran a command");
    assert!(db.finishers().is_empty());
    assert_eq!(env.settled_launches().len(), 1, "a refused View launched a viewer");
}

#[test]
fn twenty_concurrent_calls_on_a_cold_pair_give_one_viewer_and_one_import() {
    let env = Env::start(Mode::Normal);
    let db = Db::start(&env.url, &env.secret("launcher"));
    let proj = "storm";
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 2));
    let f2 = db.results_file("r2.xml", &scarf("clang-sa", "beta", 2));
    db.result("ar-1", proj, &f1, Some("pkg"));
    db.result("ar-2", proj, &f2, Some("pkg"));
    let t0 = Instant::now();
    let children: Vec<_> = (0..20).map(|_| db.call_cmd("ar-1,ar-2", "user-1", proj).spawn().unwrap()).collect();
    let calls: Vec<Call> =
        children.into_iter().map(|c| Call::from_output(c.wait_with_output().unwrap(), t0.elapsed())).collect();
    for c in &calls {
        assert_eq!(c.return_string, "SUCCESS", "{c:?}");
        assert_eq!(c.instance, calls[0].instance, "two rows for one pair");
    }
    assert_eq!(db.sql("SELECT COUNT(*) FROM viewer_instance").trim(), "1");
    let (_, _, _, url) = db.wait_row(proj, "Viewer is up");
    db.wait_finishers_gone();
    assert_eq!(db.row(proj).unwrap().3, url, "the row went backwards after the View was up");
    let job = job_of(&env, proj);
    assert_eq!(env.imports(job["generation"].as_i64().unwrap()), 1, "results imported more than once");
    assert_eq!(findings_at(&url, job["apikey"].as_str().unwrap()).0, 4);
}

#[test]
fn a_viewer_that_fails_to_start_ends_as_unable_to_launch_in_the_row() {
    // host-job runs /bin/false as the viewer: it never says VIEWERUP, the job reports failed.
    let env = Env::start_with(Mode::Normal, &[], &[("HOSTJOB_VIEWER", "/bin/false")]);
    let db = Db::start(&env.url, &env.secret("launcher"));
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 1));
    db.result("ar-1", "doomed", &f1, Some("pkg"));
    let c = db.call("ar-1", "user-1", "doomed");
    assert_eq!(c.return_string, "SUCCESS", "{c:?}");
    let (status, code, address, url) = db.wait_row("doomed", "Unable to launch viewer: ");
    assert!(status.contains("failed to start") && status.contains("viewer did not start"), "{status}");
    assert_eq!((code.as_str(), address.as_str(), url.as_str()), ("-5", "NULL", "NULL"));
    db.wait_finishers_gone();
}

/// The background launchviewer holds nothing of the database server's (stdio on /dev/null,
/// none of its files), outlives a restart of the server, and on SIGTERM records why it
/// stopped (through a new connection) and exits; SIGTERM never kills it unrecorded, even
/// while it starts, and a server that is down when it is stopped gets the record when it is
/// back (CI once saw a stop lost in a restart: the row said "Launching viewer" for good).
#[test]
fn the_background_launchviewer_is_detached_and_stops_cleanly_on_sigterm() {
    let env = Env::start(Mode::Sleep);
    let db = Db::start(&env.url, &env.secret("launcher"));
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 1));
    db.result("ar-1", "slow", &f1, Some("pkg"));
    let c = db.call("ar-1", "user-1", "slow");
    assert_eq!(c.return_string, "SUCCESS", "{c:?}");
    let pids = db.finishers();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    // From its first moment SIGTERM is held (blocked) or handled, never the default death.
    assert!(sigterm_held_or_caught(pid), "SIGTERM would kill the starting finisher unrecorded");
    assert_eq!(db.row("slow").unwrap().0, "Launching viewer");
    let fd = |n: i32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    for n in 0..3 {
        assert_eq!(fd(n), std::path::Path::new("/dev/null"), "fd {n} of the background launchviewer");
    }
    let data = db.root.join("data");
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        assert!(!target.starts_with(&data), "the background launchviewer holds the server's {}", target.display());
    }
    // Its own session: a kill of the caller's process group does not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "not a session leader: {stat}");

    // The server restarts under it: its connection is gone; the next write makes a new one.
    db.restart();
    let left = db.finishers();
    assert_eq!(
        left,
        [pid],
        "the background launchviewer did not outlive the server; its row: {:?}\n--- agent-monitor:\n{}",
        db.row("slow"),
        env.daemon_log()
    );
    // Stopped while the server is down: it keeps its last word until the server is back.
    db.stop_server();
    // SAFETY: SIGTERM to the background launchviewer this test's CALL started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(db.finishers(), [pid], "the stopped finisher gave up on a server that is down");
    db.start_server();
    db.wait_finishers_gone();
    let (status, code, _, url) = db.wait_row("slow", "Unable to launch viewer: ");
    assert!(status.contains("SIGTERM"), "{status}");
    assert_eq!((code.as_str(), url.as_str()), ("-5", "NULL"));
}

/// SIGTERM (bit 14 of the masks) is blocked or caught by `pid`.
fn sigterm_held_or_caught(pid: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
    };
    (mask("SigBlk:") | mask("SigCgt:")) & (1 << (libc::SIGTERM - 1)) != 0
}
