//! The command-line contract: `check`, `serve` (VIEWERUP/VIEWERDOWN, SIGTERM), and the
//! `export` → `import` round trip, including refused archives.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use reqwest::Method;

fn viewer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_viewer")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn stderr_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "expected exactly one stderr line, got {err:?}");
    err
}

const RUN_JSON: &str = r#"{"project":"myproj","viewer":"CodeDX","users":["alice","bob"],
 "apikey":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
 "urluuid":"proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b","port":8080}"#;

#[test]
fn check_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let good = write("good.json", RUN_JSON);
    let out = viewer(&["check", "--config", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty());

    let cases = [
        ("nousers.json", RUN_JSON.replace(r#"["alice","bob"]"#, "[]"), "users"),
        ("key.json", RUN_JSON.replace("00112233", "zz112233"), "apikey"),
        ("uuid.json", RUN_JSON.replace("proxy-0f8b", "proxy-0F8B"), "urluuid"),
        ("proj.json", RUN_JSON.replace("myproj", "my/proj"), "project"),
        ("extra.json", RUN_JSON.replace("\"port\"", "\"debug\":true,\"port\""), "unknown field"),
        ("missing.json", RUN_JSON.replace(r#""viewer":"CodeDX","#, ""), "viewer"),
        ("broken.json", "{".to_string(), "broken.json"),
    ];
    for (name, text, needle) in cases {
        let path = write(name, &text);
        let out = viewer(&["check", "--config", &path]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let line = stderr_line(&out);
        assert!(line.contains(needle), "{name}: {line:?} should mention {needle}");
    }
    let out = viewer(&["check", "--config", "/nonexistent/run.json"]);
    assert_eq!(out.status.code(), Some(2));
    let out = viewer(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Starts `viewer serve ARGS`, waits for VIEWERUP and returns (child, address, stdout).
fn spawn_serve(args: &[&str]) -> (std::process::Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_viewer"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("VIEWERUP ").unwrap_or_else(|| panic!("first line was {line:?}")).to_owned();
    (child, addr, out)
}

fn sigterm_and_wait(mut child: std::process::Child, mut out: BufReader<std::process::ChildStdout>) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "VIEWERDOWN\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_run_json_and_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.json");
    std::fs::write(&cfg, RUN_JSON).unwrap();
    let data = dir.path().join("data");
    let (child, addr, out) =
        spawn_serve(&["--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let url = format!("http://{addr}{CTX}/api/projects");
    let r = reqwest::Client::new().get(&url).header("API-Key", KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A second server on the same data directory is refused (exit 4).
    let second = viewer(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(second.status.code(), Some(4), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(second.stdout.is_empty(), "no VIEWERUP from a server that did not start");
    sigterm_and_wait(child, out);

    let key = dir.path().join("key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let (child, addr, out) = spawn_serve(&[
        "--project",
        "p",
        "--users",
        "alice,bob",
        "--apikey-file",
        key.to_str().unwrap(),
        "--context",
        "/proxy-x",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/proxy-x/"))
        .header("X-Vrun-Proof", vrun_proto::frontdoor::make_proof(KEY, "bob", viewer::db::now()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sigterm_and_wait(child, out);

    let out = viewer(&["serve", "--project", "p", "--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "no users and no key is bad usage");
}

/// Hash of every file in a directory, to prove it was not touched.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn export_import_round_trip_and_refused_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = Server::start(config(&a)).await;
    let p = s.create_project("pkg").await;
    s.create_project("empty").await;
    s.import(p, &[("m.sarif", fixture("multi_tool.sarif"))]).await;
    s.import(p, &[("s.xml", fixture("swamp_cppcheck.scarf.xml"))]).await;
    let f = s.findings(p, "").await;
    s.triage(f[0]["id"].as_i64().unwrap(), "false_positive", "not reachable — ü").await;
    s.triage(f[3]["id"].as_i64().unwrap(), "fixed", "").await;
    let before = s.findings(p, "").await;
    let projects_before: serde_json::Value =
        s.api(Method::GET, "/projects").send().await.unwrap().json().await.unwrap();

    // Export while the server runs is allowed; import into its directory is not.
    let archive = tmp.path().join("state.vrun");
    let out = viewer(&["export", "--data", a.to_str().unwrap(), archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = viewer(&["import", "--data", a.to_str().unwrap(), archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    stderr_line(&out);
    s.stop().await;

    let out = viewer(&["import", "--data", b.to_str().unwrap(), archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = Server::start(config(&b)).await;
    assert_eq!(s.findings(p, "").await, before, "findings and triage differ after the round trip");
    let projects_after: serde_json::Value = s.api(Method::GET, "/projects").send().await.unwrap().json().await.unwrap();
    assert_eq!(projects_after, projects_before);
    let html = s.page(&format!("/findings/{}", f[0]["id"]), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("not reachable — ü</textarea>"));
    s.stop().await;

    // Refused archives leave b exactly as it was.
    let foreign = tmp.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let newer = tmp.path().join("newer.db");
    std::fs::copy(&archive, &newer).unwrap();
    rusqlite::Connection::open(&newer).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let full = std::fs::read(&archive).unwrap();
    let mut corrupt = full.clone();
    // Scribble over the middle pages (b-tree content), keeping the header valid.
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 4096].iter_mut().for_each(|b| *b = 0xA5);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not a database at all, just text".repeat(200), "not an SQLite database"),
        ("empty", Vec::new(), "not a viewer database"),
        ("truncated", full[..full.len() / 3].to_vec(), "archive refused"),
        ("corrupt", corrupt, "archive refused"),
        ("foreign", std::fs::read(&foreign).unwrap(), "not a viewer database"),
        ("newer", std::fs::read(&newer).unwrap(), "schema version 99"),
    ];
    let untouched = snapshot(&b);
    for (name, bytes, needle) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = viewer(&["import", "--data", b.to_str().unwrap(), path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let line = stderr_line(&out);
        assert!(line.contains(needle), "{name}: {line:?} should mention {needle:?}");
        assert_eq!(snapshot(&b), untouched, "{name} changed the data directory");
    }
    let out = viewer(&["import", "--data", b.to_str().unwrap(), "/nonexistent/archive"]);
    assert_eq!(out.status.code(), Some(1));
    let out = viewer(&["export", "--data", tmp.path().join("nothing").to_str().unwrap(), "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    stderr_line(&out);
}
