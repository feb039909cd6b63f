//! The JSON API contract, against a real server on 127.0.0.1:0.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use viewer::config::Limits;

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.expect("error bodies are JSON");
    (status, body["error"].as_str().expect("error has a message").to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_requires_the_system_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let id = s.create_project("pkg").await;
    let endpoints = [
        (Method::GET, "/projects".to_string()),
        (Method::PUT, "/projects".to_string()),
        (Method::DELETE, format!("/projects/{id}")),
        (Method::POST, format!("/projects/{id}/analysis")),
        (Method::GET, format!("/projects/{id}/findings")),
        (Method::GET, "/jobs/abc".to_string()),
        (Method::GET, "/activity".to_string()),
    ];
    let wrong_key = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    for (method, path) in &endpoints {
        let url = format!("{}/api{path}", s.base);
        let attempts = [
            ("none", s.client.request(method.clone(), &url)),
            ("wrong API-Key", s.client.request(method.clone(), &url).header("API-Key", wrong_key)),
            (
                "wrong System-Key",
                s.client.request(method.clone(), &url).header("Authorization", format!("System-Key {wrong_key}")),
            ),
            ("user header", s.client.request(method.clone(), &url).header("Authorization", "SWAMP alice")),
            ("key prefix", s.client.request(method.clone(), &url).header("API-Key", &KEY[..32])),
        ];
        for (what, req) in attempts {
            let (status, msg) = error_of(req.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {what}");
            assert!(msg.contains("API key"), "{msg}");
        }
    }
    // The project survived every unauthorised DELETE; SWAMP's header form works too.
    let r = s
        .client
        .get(format!("{}/api/projects", s.base))
        .header("Authorization", format!("System-Key {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({ "projects": [{ "id": id, "name": "pkg" }] }));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn project_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let list = |v: Value| v["projects"].as_array().unwrap().clone();

    let v: Value = s.api(Method::GET, "/projects").send().await.unwrap().json().await.unwrap();
    assert!(list(v).is_empty());
    let a = s.create_project("sqlite-3.15").await;
    let b = s.create_project("zlib").await;
    assert_ne!(a, b);

    let r = s.api(Method::PUT, "/projects").json(&serde_json::json!({ "name": "zlib" })).send().await.unwrap();
    let (status, msg) = error_of(r).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(msg.contains("zlib"), "{msg}");

    for bad in
        [serde_json::json!({ "name": "../x" }), serde_json::json!({ "name": "" }), serde_json::json!({ "nom": "x" })]
    {
        let r = s.api(Method::PUT, "/projects").json(&bad).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    let v: Value = s.api(Method::GET, "/projects").send().await.unwrap().json().await.unwrap();
    let names: Vec<_> = list(v).iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["sqlite-3.15", "zlib"]);

    assert_eq!(s.api(Method::DELETE, &format!("/projects/{a}")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(s.api(Method::DELETE, &format!("/projects/{a}")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(s.api(Method::DELETE, "/projects/nope").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(s.api(Method::GET, "/jobs/0000").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let v: Value = s.api(Method::GET, "/projects").send().await.unwrap().json().await.unwrap();
    assert_eq!(list(v).len(), 1);

    // A deleted project's name can be used again.
    s.create_project("sqlite-3.15").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sarif_with_several_tools_odd_paths_and_unicode() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let msg = s.import(p, &[("multi_tool.sarif", fixture("multi_tool.sarif"))]).await;
    assert!(msg.contains("imported 6 findings (6 new)"), "{msg}");

    let f = s.findings(p, "").await;
    assert_eq!(f.len(), 6, "the 'pass' result is not a finding");
    let by_tool = |t: &str| f.iter().filter(|x| x["tool"] == t).count();
    assert_eq!((by_tool("gcc"), by_tool("clang-tidy"), by_tool("semgrep")), (3, 2, 1));

    let find =
        |file: &str| f.iter().find(|x| x["file"] == file).unwrap_or_else(|| panic!("no finding in {file}: {f:#?}"));
    let jp = find("src/ü/日本.c");
    assert_eq!((jp["line"].as_i64(), jp["severity"].as_str()), (Some(10), Some("high")));
    assert_eq!(jp["message"], "使用されていない変数 «x» — unused variable ✓");
    assert_eq!(find("src/my file.c")["severity"], "medium", "%20 is decoded");
    assert_eq!(find("../lib/../include/x.h")["severity"], "low", "paths are data, kept as given");
    let moved = find("src/main.cpp");
    assert_eq!((moved["rule"].as_str(), moved["severity"].as_str()), (Some("bugprone-use-after-move"), Some("high")));
    assert_eq!(find("web/<index>.html")["message"], "<script>alert(\"x\")</script> & <b>bold</b>");
    let secret = f.iter().find(|x| x["tool"] == "semgrep").unwrap();
    assert_eq!(
        (secret["file"].as_str(), secret["line"].as_i64(), secret["severity"].as_str()),
        (Some(""), Some(0), Some("info"))
    );
    assert!(f.iter().all(|x| x["status"] == "new" && x["present"] == true));

    // Filters of the listing.
    assert_eq!(s.findings(p, "tool=gcc").await.len(), 3);
    assert_eq!(s.findings(p, "severity=high").await.len(), 2);
    assert_eq!(s.findings(p, "q=%E6%97%A5%E6%9C%AC").await.len(), 1, "text search on the unicode path");
    assert_eq!(s.findings(p, "q=%25d").await.len(), 1, "'%d' is in one message");
    assert_eq!(s.findings(p, "q=_").await.len(), 0, "'_' is matched literally, not as a wildcard");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scarf_from_swamp() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("sqlite").await;
    // A source archive part rides along, as the SWAMP pusher sends it (tests/sources.rs
    // shows what the pages make of it).
    let zip = zip(&[("sqlite/README", b"not referenced by any finding")]);
    let msg = s.import(p, &[("results.xml", fixture("swamp_cppcheck.scarf.xml")), ("source.zip", zip)]).await;
    assert!(msg.contains("imported 4 findings") && msg.contains("1 results file"), "{msg}");

    let f = s.findings(p, "").await;
    assert_eq!(f.len(), 4);
    assert!(f.iter().all(|x| x["tool"] == "cppcheck"));
    let get = |rule: &str| f.iter().find(|x| x["rule"] == rule).unwrap();
    let np = get("nullPointer");
    assert_eq!((np["file"].as_str(), np["line"].as_i64()), (Some("sqlite-autoconf-3150200/sqlite3.c"), Some(78123)));
    assert_eq!(
        (np["severity"].as_str(), np["message"].as_str()),
        (Some("high"), Some("Possible null pointer dereference: pOp"))
    );
    let leak = get("memleak");
    assert_eq!(
        (leak["line"].as_i64(), leak["severity"].as_str()),
        (Some(120), Some("medium")),
        "primary location wins"
    );
    let scope = get("variableScope");
    assert_eq!(scope["file"], "sqlite-autoconf-3150200/src/ü/日本.c");
    assert_eq!(scope["message"], "The scope of the variable 'ü' can be reduced <здесь> & there");
    assert_eq!(scope["severity"], "low");
    assert_eq!(get("missingInclude")["message"], "Include file: <config.h> not found.");
    assert_eq!(get("missingInclude")["severity"], "info");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_findings_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("big").await;
    let mut sarif = Vec::new();
    viewer::import::synth::write_sarif(&mut sarif, 2000, 4).unwrap();
    let msg = s.import(p, &[("big.sarif", sarif)]).await;
    assert!(msg.contains("imported 2000 findings (2000 new)"), "{msg}");
    let all = s.findings(p, "").await;
    assert_eq!(all.len(), 2000);
    let fps: std::collections::HashSet<_> = all.iter().map(|f| f["fingerprint"].as_str().unwrap()).collect();
    assert_eq!(fps.len(), 2000);
    for t in 0..4 {
        assert_eq!(s.findings(p, &format!("tool=synth-tool-{t}")).await.len(), 500);
    }
    // Pages of 200 cover everything exactly once.
    let mut seen = std::collections::HashSet::new();
    for page in 1..=10 {
        let v: Value = s
            .api(Method::GET, &format!("/projects/{p}/findings?sort=file&page={page}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["total"], 2000);
        for f in v["findings"].as_array().unwrap() {
            assert!(seen.insert(f["id"].as_i64().unwrap()));
        }
    }
    assert_eq!(seen.len(), 2000);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_jobs_say_why_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let good: Vec<String> = (1..=5).map(|i| result("R1", "a.c", i, &format!("finding {i}"))).collect();
    s.import(p, &[("good.sarif", sarif("lint", &good))]).await;
    let before = s.findings(p, "").await;
    assert_eq!(before.len(), 5);

    // One malformed finding in the middle of otherwise good ones.
    let mut mixed: Vec<String> = (10..20).map(|i| result("R2", "b.c", i, "new")).collect();
    mixed.insert(
        5,
        r#"{"ruleId":"R2","message":{"text":"x"},"locations":[{"physicalLocation":{"region":{"startLine":"ten"}}}]}"#
            .into(),
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("mixed.sarif", sarif("lint", &mixed), "mixed.sarif"),
        ("notes.txt", b"just some text".to_vec(), "neither SARIF JSON nor SCARF XML"),
        ("v1.sarif", br#"{"version":"1.0.0","runs":[]}"#.to_vec(), "unsupported SARIF version"),
        ("cut.sarif", sarif("lint", &good)[..200].to_vec(), "invalid SARIF"),
        ("bad.xml", b"<AnalyzerReport tool_name=\"t\"><BugInstance id=\"1\"><BugLocations><Location><StartLine>x</StartLine></Location></BugLocations></BugInstance></AnalyzerReport>".to_vec(), "StartLine"),
        ("r.gz", b"\x1f\x8b\x08\x00rest".to_vec(), "gzip"),
        ("only.zip", b"PK\x03\x04zip".to_vec(), "no results file"),
    ];
    for (name, bytes, needle) in cases {
        // A good file in the same job must not get in either.
        let extra = sarif("other-tool", &[result("R9", "z.c", 1, "would be new")]);
        let files = if name == "only.zip" { vec![(name, bytes)] } else { vec![("extra.sarif", extra), (name, bytes)] };
        let job = s.upload(p, &files).await;
        let (status, message) = s.wait_job(&job).await;
        assert_eq!(status, "failed", "{name}: {message}");
        assert!(message.contains(needle), "{name}: {message:?} should mention {needle:?}");
        assert_eq!(s.findings(p, "").await, before, "{name} changed the project");
    }
    let v: Value = s
        .api(Method::GET, &format!("/jobs/{}", s.upload(p, &[("x", b"?".to_vec())]).await))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["jobId"].is_string());

    // Unknown project, and an upload without file parts.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = s.api(Method::POST, &format!("/projects/{p}/analysis")).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let form = reqwest::multipart::Form::new().part("file1", reqwest::multipart::Part::bytes(b"{}".to_vec()));
    let r = s.api(Method::POST, "/projects/999/analysis").multipart(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_findings_and_too_large_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits = Limits { max_upload_bytes: 64 * 1024, max_findings: 100, ..Limits::default() };
    let s = Server::start(cfg).await;
    let p = s.create_project("pkg").await;

    let mut many = Vec::new();
    viewer::import::synth::write_sarif(&mut many, 101, 1).unwrap();
    let (status, message) = s.wait_job(&s.upload(p, &[("many.sarif", many)]).await).await;
    assert_eq!((status.as_str(), message.as_str()), ("failed", "more than 100 findings in one import"));
    // Nothing was imported, and the project this first upload was for is gone with it.
    let projects = s.api(Method::GET, "/projects").send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(projects["projects"], serde_json::json!([]));
    let p = s.create_project("pkg").await;

    let big = vec![b' '; 128 * 1024];
    let form = reqwest::multipart::Form::new().part("file1", reqwest::multipart::Part::bytes(big));
    let r = s.api(Method::POST, &format!("/projects/{p}/analysis")).multipart(form).send().await.unwrap();
    let (status, msg) = error_of(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(msg.contains("65536"), "{msg}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reimport_keeps_rows_and_triage() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let results: Vec<String> = (1..=4).map(|i| result("R", "a.c", i, "same message")).collect();
    // The same finding twice in one file is two findings (it is also twice in the code).
    let mut with_dup = results.clone();
    with_dup.push(result("R", "a.c", 4, "same message"));
    let v1 = sarif("lint", &with_dup);
    let msg = s.import(p, &[("v1.sarif", v1.clone())]).await;
    assert!(msg.contains("imported 5 findings (5 new)"), "{msg}");
    let first = s.findings(p, "").await;

    let target = first.iter().find(|f| f["line"] == 2).unwrap()["id"].as_i64().unwrap();
    s.triage(target, "false_positive", "checked by hand").await;

    let msg = s.import(p, &[("v1.sarif", v1)]).await;
    assert!(msg.contains("imported 5 findings (0 new)"), "{msg}");
    let again = s.findings(p, "").await;
    assert_eq!(again.len(), 5);
    let ids = |l: &[Value]| l.iter().map(|f| f["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&first));
    assert_eq!(again.iter().find(|f| f["id"] == target).unwrap()["status"], "false_positive");

    // A newer analysis without lines 2 and 3 but with a line 9 (identity is not the line:
    // the unpaired line-4 finding is taken to have moved to 9, the shift nearest to none).
    let v2 = sarif(
        "lint",
        &[
            result("R", "a.c", 1, "same message"),
            result("R", "a.c", 4, "same message"),
            result("R", "a.c", 9, "same message"),
        ],
    );
    let msg = s.import(p, &[("v2.sarif", v2)]).await;
    assert!(msg.contains("imported 3 findings (0 new)"), "{msg}");
    let third = s.findings(p, "").await;
    assert_eq!(third.len(), 5, "absent findings are kept");
    let gone: Vec<i64> = third.iter().filter(|f| f["present"] == false).map(|f| f["line"].as_i64().unwrap()).collect();
    assert_eq!(gone, [2, 3], "lines 2 and 3 are not in v2");
    let t = third.iter().find(|f| f["id"] == target).unwrap();
    assert_eq!((t["status"].as_str(), t["present"].as_bool()), (Some("false_positive"), Some(false)));

    // Another tool's import does not touch lint's presence flags.
    s.import(p, &[("o.sarif", sarif("other", &[result("X", "b.c", 1, "m")]))]).await;
    assert_eq!(s.findings(p, "").await.iter().filter(|f| f["present"] == false).count(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_counts_requests_but_not_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let activity = || async {
        let v: Value = s.api(Method::GET, "/activity").send().await.unwrap().json().await.unwrap();
        (v["started"].as_i64().unwrap(), v["last_activity"].as_i64().unwrap())
    };
    let (started, last) = activity().await;
    assert_eq!(last, started);
    // The clock has one-second resolution: let it move past `started`.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, last) = activity().await;
    assert_eq!(last, started, "polling activity is not activity");
    // Rejected requests are not activity either.
    s.client.get(format!("{}/api/projects", s.base)).send().await.unwrap();
    s.client.get(format!("{}/", s.base)).header("Authorization", "SWAMP alice").send().await.unwrap();
    assert_eq!(activity().await.1, started);
    s.page("/", "alice").send().await.unwrap();
    let (_, last) = activity().await;
    assert!(last > started, "a page view is activity");
    s.stop().await;
}

/// `?wait=S` answers as soon as the import is over (one look instead of a poll loop), and a
/// job already over, or an unknown one, at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_look_with_wait_answers_when_the_import_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("waited").await;
    let job = s.upload(p, &[("a.sarif", sarif("t", &[result("R1", "a.c", 1, "m")]))]).await;
    let t = std::time::Instant::now();
    let v: Value = s.api(Method::GET, &format!("/jobs/{job}?wait=10")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert!(t.elapsed() < std::time::Duration::from_secs(9), "answered at the end, not at the deadline");
    let t = std::time::Instant::now();
    let v: Value = s.api(Method::GET, &format!("/jobs/{job}?wait=10")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "completed");
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "an ended job answers at once");
    assert_eq!(s.api(Method::GET, "/jobs/0000?wait=10").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let bad = s.api(Method::GET, &format!("/jobs/{job}?wait=soon")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "a wait that is not whole seconds is refused");
    s.stop().await;
}
