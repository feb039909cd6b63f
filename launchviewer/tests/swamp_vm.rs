//! The SWAMP drop-in on real VMs: a real MariaDB's `launch_viewer` procedure (through the
//! vrun_launchviewer UDF) → launchviewer → agent-monitor → vruntask → libvirt/QEMU viewer
//! VM (TCG). One VM boot serves every assertion; the failure case boots none.
//!
//! Needs what e2e_vm.rs needs (libvirtd, the viewer image, the workspace's binaries
//! including libvrun_udf.so) and Debian's mariadb-server; runs in the `vm` test group.

mod e2e;
mod swamp;

use std::time::{Duration, Instant};

use e2e::*;
use swamp::*;
use vrun_test_support::log_step;

const V: &str = "CodeDX";

/// Twenty concurrent cold CALLs with two SCARF files → each answers at once; one VM, one
/// import; the row reaches "Viewer is up" with the URL; both files' findings are there; a
/// CALL after that is warm; a hostile package name is refused and launches nothing.
#[test]
fn call_launch_viewer_boots_one_vm_for_twenty_calls_and_records_the_url() {
    let _vm = vm_lock();
    let t0 = Instant::now();
    let mut stack = Stack::start();
    let p = stack.project("swamp");
    let db = Db::start(&stack.url, &stack.state().join("secrets/launcher.secret"));
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 2));
    let f2 = db.results_file("r2.xml", &scarf("clang-sa", "beta", 3));
    db.result("ar-1", &p, &f1, Some("curl-7.1"));
    db.result("ar-2", &p, &f2, Some("curl-7.1"));

    let children: Vec<_> = (0..20).map(|_| db.call_cmd("ar-1,ar-2", "user-1", &p).spawn().unwrap()).collect();
    let calls: Vec<Call> =
        children.into_iter().map(|c| Call::from_output(c.wait_with_output().unwrap(), t0.elapsed())).collect();
    let slowest = calls.iter().map(|c| c.took).max().unwrap();
    log_step(t0, &format!("20 cold CALLs answered, the last after {:.1} s", slowest.as_secs_f64()));
    for c in &calls {
        assert_eq!(c.return_string, "SUCCESS", "{c:?}\n{}", stack.diagnostics());
        assert_eq!(c.instance, calls[0].instance);
    }
    // A TCG boot takes a minute or more: answering within 30 s means nobody waited for it.
    assert!(slowest < Duration::from_secs(30), "a CALL waited for the VM: {slowest:?}");

    let (_, code, address, url) = db.wait_row_within(&p, "Viewer is up", PATIENCE);
    log_step(t0, &format!("row: Viewer is up at {url}"));
    let avail = stack.availability(&p, V);
    assert!(avail.ready, "{avail:?}");
    assert_eq!((code.as_str(), address.as_str()), ("2", avail.address.as_str()));
    let base = format!("http://{}/{}", avail.address, avail.urluuid);
    // The row holds the front door's clean URL (no login token); the address, the viewer's.
    let (url_base, id) = split_url(&url);
    assert_eq!(url_base, format!("{}/{}", stack.front, avail.urluuid), "{url}");
    assert!(!url.contains("vrun_login"), "{url}");
    let list = findings(&base, &avail.apikey, id);
    let msgs: Vec<&str> = list.iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert_eq!(list.len(), 5, "{msgs:?}");
    assert!(msgs.contains(&"alpha finding 2") && msgs.contains(&"beta finding 3"), "{msgs:?}");
    let g = avail.generation;
    assert_eq!(stack.job_files(), [format!("g{g}.json")], "more than one job");
    assert_eq!(domains_of(&p), [stack.domain(&p, V, g)], "more than one VM");
    db.wait_finishers_gone();

    // Warm: at once, with the URL, the same VM.
    let warm = db.call("ar-1,ar-2", "user-1", &p);
    log_step(t0, &format!("warm CALL answered in {:.1} s", warm.took.as_secs_f64()));
    assert_eq!((warm.return_string.as_str(), warm.return_url.as_str()), ("SUCCESS", url.as_str()), "{warm:?}");
    assert!(warm.took < Duration::from_secs(30), "{warm:?}");
    assert_eq!(stack.job_files(), [format!("g{g}.json")], "the warm CALL launched a job");

    // Hostile package name: an ERROR string; nothing launched.
    db.result("ar-h", &p, &f1, Some("x'; DROP TABLE viewer_instance; -- $(reboot)"));
    let bad = db.call("ar-h", "user-1", &p);
    assert!(bad.return_string.starts_with("ERROR package name"), "{bad:?}");
    assert_eq!(db.row(&p).unwrap().3, url, "a refused View changed a live viewer's row");
    assert_eq!(stack.job_files(), [format!("g{g}.json")]);

    // The viewer's own record of import jobs, from its archived database: exactly one.
    stack.abort(&p, V);
    let rec = stack.wait_terminal(&p, V, g);
    assert_eq!(rec.state, "stopped", "{rec:#?}\n{}", stack.diagnostics());
    stack.wait_job_exit(g);
    let archives = stack.archives(&p, V);
    assert_eq!(archives.len(), 1, "{archives:?}");
    assert_eq!(archive_query(&archives[0], "SELECT status FROM jobs"), ["completed"], "import jobs");
    drop(db);
    stack.finish();
    log_step(t0, "done, nothing left behind");
}

/// A viewer that cannot start (here: vruntask's platform directory holds no image) ends
/// as "Unable to launch viewer: <reason>" in the row; the CALL itself answered SUCCESS.
#[test]
fn call_launch_viewer_whose_viewer_fails_records_unable_to_launch() {
    let _vm = vm_lock();
    // A plain name (vruntask takes the directory's name as the platform's): only the image is missing.
    let empty = tempfile::Builder::new().prefix("noimage").tempdir().unwrap();
    let mut stack = Stack::start_on(empty.path());
    let p = stack.project("swampfail");
    let db = Db::start(&stack.url, &stack.state().join("secrets/launcher.secret"));
    let f1 = db.results_file("r1.xml", &scarf("cppcheck", "alpha", 1));
    db.result("ar-1", &p, &f1, Some("pkg"));
    let c = db.call("ar-1", "user-1", &p);
    assert_eq!(c.return_string, "SUCCESS", "{c:?}");
    let (status, code, _, url) = db.wait_row_within(&p, "Unable to launch viewer: ", PATIENCE);
    eprintln!("row: {status}");
    assert!(status.contains("failed to start") && status.contains("vmlinuz"), "{status}\n{}", stack.diagnostics());
    assert_eq!((code.as_str(), url.as_str()), ("-5", "NULL"));
    db.wait_finishers_gone();
    drop(db);
    stack.finish();
}
