//! The whole View path for real: launchviewer → agent-monitor → vruntask → libvirt/QEMU
//! viewer VM (TCG) → results pushed → URL opened in headless Chromium as the authorised user
//! → stop (database archived) → a new VM restores it.
//!
//! Needs libvirtd on `qemu:///system` (`source scripts/lib/libvirt.sh; vrun_start_libvirt`),
//! the viewer image (target/viewer-image or `VRUN_VIEWER_IMAGE`), the workspace's debug
//! binaries (`cargo build --workspace`) and Debian's `chromium chromium-driver
//! python3-selenium`; `scripts/test` provides all of them. VMs boot one at a time (a
//! process-wide lock); every wait is bounded and generous. Each test's [`e2e::Stack`] leaves
//! no daemon, job, domain or directory behind, and checks so at the end.

mod e2e;

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;
use vrun_test_support::log_step;

const V: &str = "CodeDX";
/// The finding the browser triages (in launchviewer/samples/sample.sarif, tool gcc).
const TRIAGED_MESSAGE: &str = "unused variable 'rc'";
const COMMENT: &str = "e2e: rc is only read under NDEBUG, not a bug";

fn sample() -> String {
    manifest_path("samples/sample.sarif")
}

fn count_results(sarif: &str) -> usize {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(sarif).unwrap()).unwrap();
    doc["runs"].as_array().unwrap().iter().map(|r| r["results"].as_array().unwrap().len()).sum()
}

/// A small SARIF file of another tool than any in sample.sarif, with `n` findings.
fn other_results(n: usize) -> Vec<u8> {
    let results: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            serde_json::json!({
                "ruleId": "nullPointer",
                "level": "error",
                "message": {"text": format!("e2e: possible null pointer dereference of p{i}")},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": "src/other.c"},
                    "region": {"startLine": 10 * i}
                }}]
            })
        })
        .collect();
    let doc = serde_json::json!({
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "cppcheck-e2e", "version": "2.10"}}, "results": results}]
    });
    serde_json::to_vec_pretty(&doc).unwrap()
}

fn args<'a>(project: &'a str, results: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--project", project, "--viewer", V, "--user", "alice", "--results", results];
    v.extend_from_slice(more);
    v
}

/// Where the browser's screenshots are kept for a human to look at.
fn screenshot_path(name: &str) -> String {
    let dir = manifest_path("../target/e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    format!("{dir}/{name}")
}

/// Opens `url` in headless Chromium as alice, triages the finding [`TRIAGED_MESSAGE`] as a
/// false positive with [`COMMENT`]; returns its finding id.
fn browse_and_triage(url: &str, min_rows: usize, screenshot: &str) -> i64 {
    let script = manifest_path("tests/e2e/open_findings.py");
    let out = Command::new("/usr/bin/python3")
        .args([&script, url, &min_rows.to_string(), TRIAGED_MESSAGE, COMMENT, screenshot])
        .output()
        .expect("run /usr/bin/python3 (Debian's, with python3-selenium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let id =
        stdout.lines().find_map(|l| l.strip_prefix("TRIAGED ")).unwrap_or_else(|| panic!("browser printed {stdout:?}"));
    id.trim().parse().unwrap()
}

fn by_message<'a>(list: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    let hits: Vec<_> = list.iter().filter(|f| f["message"] == message).collect();
    assert_eq!(hits.len(), 1, "findings with message {message:?}: {hits:?}");
    hits[0]
}

/// Fresh state → cold View → browser triage → warm View with other results (same VM) →
/// Stop (archived) → cold View on a new VM that restored the triage.
#[test]
fn view_browse_triage_reuse_stop_and_restore() {
    let _vm = vm_lock();
    let t0 = Instant::now();
    let mut stack = Stack::start();
    let p = stack.project("view");
    let sample = sample();
    let sample_n = count_results(&sample);
    assert_eq!(sample_n, 20, "sample.sarif changed; the expectations below assume 20 findings");

    // 1. Cold View: agent-monitor launches vruntask, the VM boots, results are imported.
    let cold = stack.launchviewer(&args(&p, &sample, &["--wait", "300"]));
    let url = cold.ready_url(&stack);
    log_step(t0, &format!("cold View READY in {:.1} s: {url}", cold.took.as_secs_f64()));
    assert!(url.starts_with(&stack.front) && url.contains("?vrun_login="), "not the front door's sign-in URL: {url}");
    let avail = stack.availability(&p, V);
    assert!(avail.ready, "{avail:?}");
    let g1 = avail.generation;
    let base = format!("http://{}/{}", avail.address, avail.urluuid);
    assert!(avail.address.starts_with("127.0.0.1:"), "{avail:?}");
    let (url_base, project_id) = split_url(&clean(&url));
    assert_eq!(url_base, format!("{}/{}", stack.front, avail.urluuid), "the URL is not the pair's front door path");
    assert_eq!(domains_of(&p), [stack.domain(&p, V, g1)], "exactly one domain for the pair");
    assert_eq!(stack.job_files(), [format!("g{g1}.json")]);
    let projects = api_get(&base, &avail.apikey, "projects");
    assert_eq!(projects["projects"], serde_json::json!([{"id": project_id, "name": "sample"}]));
    assert_eq!(findings(&base, &avail.apikey, project_id).len(), sample_n);

    // 2. A user opens the URL exactly as printed (it signs alice in) and triages.
    let shot = screenshot_path("view-triaged.png");
    let fid = browse_and_triage(&url, sample_n, &shot);
    log_step(t0, &format!("browser triaged finding {fid}; screenshot {shot}"));
    let list = findings(&base, &avail.apikey, project_id);
    let triaged = by_message(&list, TRIAGED_MESSAGE);
    assert_eq!((triaged["id"].as_i64(), triaged["status"].as_str()), (Some(fid), Some("false_positive")), "{triaged}");
    let fingerprint = triaged["fingerprint"].as_str().unwrap().to_owned();
    // Straight at the VM's forward, pages need the front door's proof: a forged user header
    // is refused.
    assert_eq!(get(&base, &format!("projects/{project_id}"), ("X-Unused", "1")).0, 403);
    assert_eq!(get(&base, &format!("projects/{project_id}"), ("Authorization", "SWAMP alice")).0, 403);

    // 3. Warm View with other results: the same VM, the same URL, the new results imported.
    let other = stack.file("other.sarif", &other_results(3));
    let warm = stack.launchviewer(&args(&p, &other, &["--package", "sample", "--wait", "300"]));
    let warm_url = warm.ready_url(&stack);
    log_step(t0, &format!("warm View (other results) READY in {:.1} s", warm.took.as_secs_f64()));
    assert_eq!(clean(&warm_url), clean(&url), "a warm View must answer with the same viewer and project");
    let rec = stack.status(&p, V);
    assert_eq!((rec.generation, rec.state.as_str()), (g1, "ready"), "{rec:#?}");
    assert_eq!(domains_of(&p), [stack.domain(&p, V, g1)], "the warm View started another VM");
    assert_eq!(stack.job_files(), [format!("g{g1}.json")], "the warm View launched a job");
    let list = findings(&base, &avail.apikey, project_id);
    assert_eq!(list.len(), sample_n + 3, "the other results were not imported");
    assert_eq!(list.iter().filter(|f| f["tool"] == "cppcheck-e2e").count(), 3);
    assert_eq!(by_message(&list, TRIAGED_MESSAGE)["status"], "false_positive", "a re-import lost the triage");

    // 4. The administrator stops the viewer: its database is saved and archived.
    stack.abort(&p, V);
    let rec = stack.wait_terminal(&p, V, g1);
    assert_eq!(rec.state, "stopped", "{rec:#?}\n{}", stack.diagnostics());
    stack.wait_job_exit(g1);
    log_step(t0, &format!("g{g1} stopped: {}", rec.reason));
    assert_eq!(domains_of(&p), Vec::<String>::new(), "the stopped viewer's domain is still defined");
    let archives = stack.archives(&p, V);
    assert_eq!(archives.len(), 1, "{archives:?}");
    let archived = archive_query(&archives[0], "SELECT triage_status || ' ' || triage_comment || ' ' || triage_user FROM findings WHERE triage_status != 'new'");
    assert_eq!(archived, [format!("false_positive {COMMENT} alice")]);

    // 5. A new View boots a new VM (new generation) that restored the database.
    let again = stack.launchviewer(&args(&p, &sample, &["--wait", "300"]));
    let url2 = again.ready_url(&stack);
    log_step(t0, &format!("View after the stop READY in {:.1} s: {url2}", again.took.as_secs_f64()));
    let avail2 = stack.availability(&p, V);
    let g2 = avail2.generation;
    assert!(g2 > g1, "no new generation: {avail2:?}");
    assert_eq!(avail2.urluuid, avail.urluuid, "the pair's URL is stable across generations");
    assert_eq!(domains_of(&p), [stack.domain(&p, V, g2)]);
    assert_eq!(stack.job_files(), [format!("g{g1}.json"), format!("g{g2}.json")]);
    let base2 = format!("http://{}/{}", avail2.address, avail2.urluuid);
    let (_, project_id2) = split_url(&clean(&url2));
    let list = findings(&base2, &avail2.apikey, project_id2);
    assert_eq!(list.len(), sample_n + 3, "the restored database lacks findings");
    let restored = by_message(&list, TRIAGED_MESSAGE);
    assert_eq!(
        (restored["fingerprint"].as_str(), restored["status"].as_str()),
        (Some(fingerprint.as_str()), Some("false_positive"))
    );
    // The page, as alice signed in through the front door, shows the comment.
    let fid2 = restored["id"].as_i64().unwrap();
    let (code, page) = front_door_get(&url2, &format!("findings/{fid2}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(COMMENT) && page.contains("Last triaged by alice"), "{page}");

    // 6. Stop it too (cleanly), then nothing may be left.
    stack.abort(&p, V);
    let rec = stack.wait_terminal(&p, V, g2);
    assert_eq!(rec.state, "stopped", "{rec:#?}");
    stack.wait_job_exit(g2);
    assert_eq!(stack.archives(&p, V).len(), 2);
    stack.finish();
    log_step(t0, "done, nothing left behind");
}

/// Twenty simultaneous cold Views of one pair: one VM, one URL, one import.
#[test]
fn twenty_simultaneous_cold_views_boot_one_vm_and_import_once() {
    let _vm = vm_lock();
    let t0 = Instant::now();
    let mut stack = Stack::start();
    let p = stack.project("storm");
    let sample = sample();
    let children: Vec<_> = (0..20)
        .map(|_| stack.launchviewer_cmd(&args(&p, &sample, &["--wait", "300"])).spawn().expect("spawn launchviewer"))
        .collect();
    let runs: Vec<Run> = children.into_iter().map(|c| Run::new(c.wait_with_output().unwrap(), t0.elapsed())).collect();
    // Each printed URL has its own sign-in token; without it, they are one URL.
    let urls: Vec<String> = runs.iter().map(|r| clean(&r.ready_url(&stack))).collect();
    log_step(
        t0,
        &format!("20 Views READY, the last after {:.1} s", runs.iter().map(|r| r.took).max().unwrap().as_secs_f64()),
    );
    assert!(urls.iter().all(|u| *u == urls[0]), "different URLs: {urls:?}");
    let avail = stack.availability(&p, V);
    let g = avail.generation;
    assert_eq!(stack.job_files(), [format!("g{g}.json")], "more than one job was launched");
    assert_eq!(domains_of(&p), [stack.domain(&p, V, g)], "more than one VM");
    assert_eq!(stack.daemon_log().matches("job started").count(), 1, "{}", stack.daemon_log());
    let (base, id) = split_url(&urls[0]);
    assert_eq!(findings(&base, &avail.apikey, id).len(), count_results(&sample));

    // The viewer's own record of import jobs, from its archived database: exactly one.
    stack.abort(&p, V);
    let rec = stack.wait_terminal(&p, V, g);
    assert_eq!(rec.state, "stopped", "{rec:#?}\n{}", stack.diagnostics());
    stack.wait_job_exit(g);
    let archives = stack.archives(&p, V);
    assert_eq!(archives.len(), 1, "{archives:?}");
    let jobs = archive_query(&archives[0], "SELECT status FROM jobs");
    assert_eq!(jobs, ["completed"], "the viewer ran these import jobs");
    stack.finish();
    log_step(t0, "done, nothing left behind");
}

/// A wait that runs out on a cold pair is one ERROR line, exit 1; the viewer it started is
/// then stopped by the administrator and leaves nothing behind.
#[test]
fn wait_that_runs_out_on_a_cold_pair_is_an_error() {
    let _vm = vm_lock();
    let t0 = Instant::now();
    let mut stack = Stack::start();
    let p = stack.project("short");
    let r = stack.launchviewer(&args(&p, &sample(), &["--wait", "3"]));
    log_step(t0, &format!("launchviewer --wait 3 answered after {:.1} s: {}", r.took.as_secs_f64(), r.stdout.trim()));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.line().starts_with("ERROR viewer not ready after 3 s (state "), "{r:?}");
    assert!(r.took < Duration::from_secs(20), "the wait was not bounded: {r:?}");
    let g = stack.availability(&p, V).generation;
    assert!(g > 0, "the cold View launched nothing");
    stack.abort(&p, V);
    let rec = stack.wait_terminal(&p, V, g);
    log_step(t0, &format!("g{g} after the abort: {} ({})", rec.state, rec.reason));
    // An abort during boot is a clean stop: vruntask presses the power button until the
    // guest (whose acpid may not run yet) powers off, heartbeating meanwhile so the lease holds.
    assert_eq!(rec.state, "stopped", "{rec:#?}\n{}", stack.diagnostics());
    stack.wait_job_exit(g);
    assert_eq!(stack.job_files(), [format!("g{g}.json")]);
    stack.finish();
}
