//! launchviewer end to end: real agent-monitor, real viewer (run by the host-job stand-in
//! for vruntask, see common/mod.rs), real launchviewer processes.

mod common;

use common::*;

const P: &str = "proj1";
const V: &str = "CodeDX";

fn base_args(results: &str) -> Vec<&str> {
    vec!["--project", P, "--viewer", V, "--results", results]
}

fn with(mut args: Vec<&'static str>, more: &[&'static str]) -> Vec<&'static str> {
    args.extend_from_slice(more);
    args
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn sample_findings() -> i64 {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(sample()).unwrap()).unwrap();
    doc["runs"].as_array().unwrap().iter().map(|r| r["results"].as_array().unwrap().len() as i64).sum()
}

#[test]
fn cold_view_waits_imports_and_warm_views_do_not_upload_again() {
    let env = Env::start(Mode::Normal);
    let sample = leak(sample());
    let cold = env.launchviewer(&with(base_args(sample), &["--wait", "120", "--user", "alice"]));
    let url = cold.ready_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let job = env.only_job();
    let (generation, apikey) = (job["generation"].as_i64().unwrap(), job["apikey"].as_str().unwrap().to_owned());
    let (base, id) = split_url(&url);
    assert!(base.ends_with(job["urluuid"].as_str().unwrap()), "{url}");
    // The project is named after the results file, and the findings are all in.
    let projects = api_get(&base, &apikey, "projects");
    let names: Vec<(i64, &str)> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_i64().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![(id, "sample")]);
    let findings = api_get(&base, &apikey, &format!("projects/{id}/findings"));
    assert_eq!(findings["total"].as_i64(), Some(sample_findings()), "{findings}");
    assert_eq!(env.imports(generation), 1);

    // Warm, same results, JSON output, no --wait needed: same URL, no second upload.
    let warm = env.launchviewer(&with(base_args(sample), &["--json"]));
    assert_eq!(warm.code, 0, "{warm:?}");
    let v: serde_json::Value = serde_json::from_str(warm.line()).expect("--json prints JSON");
    assert_eq!(v, serde_json::json!({"status": "ready", "url": url}));
    assert_eq!(env.imports(generation), 1, "the same results were uploaded again");
    assert_eq!(env.settled_launches().len(), 1);

    // Different results for the same package: uploaded, into the same project.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(sample).unwrap()).unwrap();
    let extra = doc["runs"][0]["results"][0].clone();
    let mut extra = extra;
    extra["message"]["text"] = "a finding only in the second run".into();
    doc["runs"][0]["results"].as_array_mut().unwrap().push(extra);
    let second = leak(env.file("sample.sarif", &serde_json::to_vec(&doc).unwrap()));
    let again = env.launchviewer(&with(base_args(second), &["--wait", "60"]));
    assert_eq!(again.ready_url(), url);
    assert_eq!(env.imports(generation), 2);
    let findings = api_get(&base, &apikey, &format!("projects/{id}/findings"));
    assert_eq!(findings["total"].as_i64(), Some(sample_findings() + 1), "{findings}");
}

#[test]
fn view_while_the_viewer_stops_is_served_by_the_next_generation() {
    // Jobs heartbeat every second and linger 2 s in `stopping`, so the second View below
    // arrives while the first viewer is still stopping (agent-monitor queues it).
    let env = Env::start_with(Mode::Normal, &["--heartbeat-secs", "1"], &[("HOSTJOB_STOP_DELAY", "2")]);
    let sample = leak(sample());
    let first = env.launchviewer(&with(base_args(sample), &["--wait", "120"])).ready_url();
    abort(&env, P, V);
    assert_eq!(availability(&env, P, V).state, "stopping");
    let second = env.launchviewer(&with(base_args(sample), &["--wait", "120"])).ready_url();
    assert_ne!(second, first, "the stopped viewer's URL was handed out");
    let launches = env.settled_launches();
    assert_eq!(launches.len(), 2, "{launches:?}");
    let g2: serde_json::Value = serde_json::from_slice(&std::fs::read(&launches[1].1).unwrap()).unwrap();
    assert_eq!(env.imports(g2["generation"].as_i64().unwrap()), 1, "the new viewer did not get the results");
}

#[test]
fn twenty_simultaneous_cold_views_launch_once_and_import_once() {
    let env = Env::start(Mode::Normal);
    let sample = leak(sample());
    let children: Vec<_> =
        (0..20).map(|_| env.spawn_launchviewer(&with(base_args(sample), &["--wait", "120"]))).collect();
    let runs: Vec<Run> = children.into_iter().map(|c| Run::from_output(c.wait_with_output().unwrap())).collect();
    let urls: Vec<String> = runs.iter().map(Run::ready_url).collect();
    assert!(urls.iter().all(|u| *u == urls[0]), "different URLs: {urls:?}");
    let job = env.only_job();
    assert_eq!(env.imports(job["generation"].as_i64().unwrap()), 1, "results imported more than once");
}

#[test]
fn without_wait_a_cold_view_answers_launching_at_once() {
    let env = Env::start(Mode::Sleep);
    let sample = leak(sample());
    let r = env.launchviewer(&base_args(sample));
    assert_eq!((r.line(), r.code), ("LAUNCHING launching", 3), "{r:?}");
    // A second click joins the same launch; in JSON it names the generation.
    let r = env.launchviewer(&with(base_args(sample), &["--json"]));
    assert_eq!(r.code, 3, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(r.line()).unwrap();
    assert_eq!(v["status"], "launching");
    assert_eq!(v["generation"], env.only_job()["generation"]);
}

#[test]
fn wait_that_runs_out_is_an_error_naming_the_state() {
    let env = Env::start(Mode::Sleep);
    let r = env.launchviewer(&with(base_args(leak(sample())), &["--wait", "2"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.line().starts_with("ERROR viewer not ready after 2 s (state "), "{r:?}");
}

#[test]
fn viewer_that_refuses_connections_at_first_is_retried() {
    let env = Env::start(Mode::Early);
    let r = env.launchviewer(&with(base_args(leak(sample())), &["--wait", "60"]));
    r.ready_url();
    assert_eq!(env.imports(env.only_job()["generation"].as_i64().unwrap()), 1);
}

#[test]
fn viewer_that_rejects_the_key_is_a_clear_error() {
    let env = Env::start(Mode::BadKey);
    let r = env.launchviewer(&with(base_args(leak(sample())), &["--wait", "60"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.line().starts_with("ERROR ") && r.line().contains("rejected the API key"), "{r:?}");
}

#[test]
fn unreachable_agent_monitor_is_one_error_line() {
    let url = format!("http://127.0.0.1:{}/RPC2", free_port());
    let r = launchviewer(&url, &base_args(leak(sample())));
    assert_eq!(r.line(), format!("ERROR cannot reach agent-monitor at {url}: connection refused"));
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("backtrace"), "{r:?}");
    let r = launchviewer(&url, &with(base_args(leak(sample())), &["--json"]));
    let v: serde_json::Value = serde_json::from_str(r.line()).unwrap();
    assert_eq!(v["status"], "error");
    assert!(v["message"].as_str().unwrap().starts_with("cannot reach agent-monitor"), "{v}");
}

#[test]
fn results_that_are_neither_sarif_nor_scarf_launch_nothing() {
    let env = Env::start(Mode::Normal);
    for (name, content) in [("r.sarif", &b"{\"version\":\"2.1.0\"}"[..]), ("r.xml", b"<html/>"), ("r.txt", b"hello")] {
        let f = leak(env.file(name, content));
        let r = env.launchviewer(&with(base_args(f), &["--wait", "5"]));
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.line().starts_with("ERROR results file ") && r.line().contains("neither SARIF 2.1.0 nor SCARF"),
            "{r:?}"
        );
    }
    assert_eq!(availability(&env, P, V).state, "", "a bad results file started a viewer");
    assert!(env.settled_launches().is_empty());
}

#[test]
fn bad_invocations_are_usage_errors() {
    let url = format!("http://127.0.0.1:{}/RPC2", free_port());
    let sample = leak(sample());
    let cases: [(&[&str], &str); 5] = [
        (&["--project", "../x", "--viewer", V, "--results", sample], "ERROR project must start with a letter or digit"),
        (&["--project", P, "--viewer", V, "--results", sample, "--user", "a b"], "ERROR user may contain only"),
        (&["--project", P, "--viewer", V, "--results", sample, "--package", "my pkg"], "ERROR package name \"my pkg\""),
        (&["--project", P, "--viewer", V, "--results", "/nonexistent/r.sarif"], "ERROR cannot read results file"),
        (&["--project", P, "--viewer", V], "ERROR the following required arguments were not provided"),
    ];
    for (args, want) in cases {
        let r = launchviewer(&url, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.line().starts_with(want), "{args:?}: {r:?}");
    }
    // Usage errors answer in JSON too when asked.
    let r = launchviewer(&url, &["--json", "--project", P]);
    let v: serde_json::Value = serde_json::from_str(r.line()).unwrap();
    assert_eq!((v["status"].as_str(), r.code), (Some("error"), 2));
}

#[test]
fn scarf_results_are_accepted_and_source_travels_along() {
    let env = Env::start(Mode::Normal);
    let scarf = leak(env.file(
        "cppcheck.scarf.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<AnalyzerReport tool_name=\"cppcheck\" tool_version=\"2.10\" uuid=\"0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b\">\n<BugInstance id=\"1\"><BugLocations><Location id=\"1\" primary=\"true\"><SourceFile>src/ü.c</SourceFile><StartLine>3</StartLine></Location></BugLocations><BugMessage>Memory leak: p</BugMessage><BugGroup>error</BugGroup><BugCode>memleak</BugCode></BugInstance>\n</AnalyzerReport>\n"
            .as_bytes(),
    ));
    // An empty zip: the end-of-central-directory record alone.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    let src = leak(env.file("src.zip", &zip));
    let r = env.launchviewer(&with(base_args(scarf), &["--source", src, "--wait", "120"]));
    let url = r.ready_url();
    let job = env.only_job();
    let (base, id) = split_url(&url);
    let projects = api_get(&base, job["apikey"].as_str().unwrap(), "projects");
    assert_eq!(projects["projects"][0]["name"], "cppcheck.scarf", "{projects}");
    let findings = api_get(&base, job["apikey"].as_str().unwrap(), &format!("projects/{id}/findings"));
    assert_eq!(findings["total"].as_i64(), Some(1), "{findings}");
}
