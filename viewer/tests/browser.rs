//! Drives `tests/browser/triage_test.py` (selenium + headless Chromium) against a real
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

#[test]
fn triage_in_headless_chromium() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_viewer"))
        .args(["serve", "--project", "myproj", "--users", "alice,bob", "--context", CTX, "--listen", "127.0.0.1:0"])
        .arg("--apikey-file")
        .arg(&key)
        .arg("--data")
        .arg(&data)
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
        let form = reqwest::multipart::Form::new()
            .part("file1", reqwest::multipart::Part::bytes(fixture("multi_tool.sarif")).file_name("r.sarif"));
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

    let screenshot = std::env::temp_dir().join("viewer-triage.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/triage_test.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .arg(&base)
        .arg(format!("/projects/{project}"))
        .arg(&screenshot)
        .env("VIEWER_APIKEY", KEY)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "browser flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("browser triage flow ok"));
}
