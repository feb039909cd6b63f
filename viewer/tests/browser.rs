//! Drives `tests/browser/*.py` (selenium + headless Chromium) against a real
//! viewer process. Not skippable: without chromium, chromium-driver and python3-selenium
//! (Debian packages, see scripts/apt-packages) the test fails and says what is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Debian's python3-selenium is installed for the system interpreter, which may not be
/// the `python3` first on PATH (e.g. under pyenv).
const PYTHON: &str = "/usr/bin/python3";

fn require_tools() {
    let mut missing = Vec::new();
    for (path, package) in
        [("/usr/bin/chromium", "chromium"), ("/usr/bin/chromedriver", "chromium-driver"), (PYTHON, "python3")]
    {
        if !Path::new(path).exists() {
            missing.push(package);
        }
    }
    let selenium = Command::new(PYTHON).args(["-c", "import selenium"]).stderr(Stdio::null()).status();
    if !selenium.is_ok_and(|s| s.success()) {
        missing.push("python3-selenium");
    }
    assert!(missing.is_empty(), "browser test needs Debian packages: apt-get install -y {}", missing.join(" "));
}

/// A viewer process on 127.0.0.1:0 with one project seeded through the API from `files`;
/// returns (process, base URL, project id).
fn serve_seeded(data: &Path, files: Vec<(&str, Vec<u8>)>) -> (std::process::Child, String, i64) {
    let key = data.join("key");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&key, KEY).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_viewer"))
        .args(["serve", "--project", "myproj", "--users", "alice,bob", "--context", CTX, "--listen", "127.0.0.1:0"])
        .arg("--apikey-file")
        .arg(&key)
        .arg("--data")
        .arg(data.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("VIEWERUP ").unwrap_or_else(|| panic!("viewer said {line:?}")).to_owned();
    let base = format!("http://{addr}{CTX}");

    // Seed a project through the API, as the results pusher would.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let project = rt.block_on(async {
        let client = reqwest::Client::new();
        let api = |m: reqwest::Method, p: &str| client.request(m, format!("{base}/api{p}")).header("API-Key", KEY);
        let r = api(reqwest::Method::PUT, "/projects").json(&serde_json::json!({"name": "pkg"})).send().await.unwrap();
        let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap();
        let mut form = reqwest::multipart::Form::new();
        for (i, (name, bytes)) in files.into_iter().enumerate() {
            form =
                form.part(format!("file{}", i + 1), reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
        }
        let r = api(reqwest::Method::POST, &format!("/projects/{id}/analysis")).multipart(form).send().await.unwrap();
        let job = r.json::<serde_json::Value>().await.unwrap()["jobId"].as_str().unwrap().to_owned();
        for _ in 0..600 {
            let v: serde_json::Value =
                api(reqwest::Method::GET, &format!("/jobs/{job}")).send().await.unwrap().json().await.unwrap();
            match v["status"].as_str().unwrap() {
                "completed" => return id,
                "failed" => panic!("seed import failed: {}", v["message"]),
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        panic!("seed import did not finish");
    });
    (child, base, project)
}

/// Runs a browser script; kills the viewer; fails with the script's output.
fn run_script(mut child: std::process::Child, script: &str, args: &[String], ok: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script);
    // The scripts sign page requests with the proof the front door would add (key from the API key).
    let out = Command::new(PYTHON).arg(&script).args(args).env("VIEWER_APIKEY", KEY).output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "browser flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(ok));
}

#[test]
fn triage_in_headless_chromium() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let (child, base, project) = serve_seeded(dir.path(), vec![("r.sarif", fixture("multi_tool.sarif"))]);
    let screenshot = std::env::temp_dir().join("viewer-triage.png");
    let args = [base, format!("/projects/{project}"), screenshot.display().to_string()];
    run_script(child, "triage_test.py", &args, "browser triage flow ok");
}

#[test]
fn triager_tools_in_headless_chromium() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let db_py = "import sqlite3\n\ndef run_query(arg):\n    q = \"SELECT '%s'\" % arg\n    cur = sqlite3.connect('d').cursor()\n    cur.execute(q)\n    return cur.fetchall()\n";
    let web_py = "from flask import request\n\ndef view():\n    return run_query(request.args['x'])\n";
    let archive = zip(&[("app-1.0/app/db.py", db_py.as_bytes()), ("app-1.0/app/web.py", web_py.as_bytes())]);
    let long = sarif("lint", &[result("L1", &format!("src/{}/deep.c", "d".repeat(4096)), 1, "long path")]);
    let files = vec![
        ("flows.sarif", fixture("spec/flows.sarif")),
        ("multi.sarif", fixture("multi_tool.sarif")),
        ("long.sarif", long),
        ("src.zip", archive),
    ];
    let (child, base, project) = serve_seeded(dir.path(), files);
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let args = [base, format!("/projects/{project}"), downloads.display().to_string()];
    run_script(child, "triager_test.py", &args, "browser triager flow ok");
}
