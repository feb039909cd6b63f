//! SARIF 2.1.0 read as the spec says, one fixture per rule (tests/fixtures/spec/, each
//! written from the spec's text and naming its sections), imported through the real API.

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

/// (rule, file, line, message, severity) of every finding, in file order.
fn rows(list: &[Value]) -> Vec<(String, String, i64, String, String)> {
    list.iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("rule"), s("file"), f["line"].as_i64().unwrap(), s("message"), s("severity"))
        })
        .collect()
}

fn row(rule: &str, file: &str, line: i64, message: &str, severity: &str) -> (String, String, i64, String, String) {
    (rule.into(), file.into(), line, message.into(), severity.into())
}

async fn imported(s: &Server, name: &str) -> (i64, Vec<Value>) {
    let p = s.create_project(name).await;
    s.import(p, &[(name, fixture(&format!("spec/{name}")))]).await;
    (p, s.findings(p, "").await)
}

#[tokio::test(flavor = "multi_thread")]
async fn fixtures_read_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;

    let (_, f) = imported(&s, "bom.sarif").await;
    assert_eq!(rows(&f), vec![row("CA1001", "a.cs", 4, "bom file", "medium")]);

    let (_, f) = imported(&s, "rules.sarif").await;
    assert_eq!(
        rows(&f),
        vec![
            row("js/xss", "web/a.js", 1, "by ruleIndex only", "medium"),
            // error by default, but security-severity 8.8 says high (GitHub's mapping).
            row("cs/sql-injection", "db/q.cs", 2, "by rule reference", "high"),
            // CA2101/1 takes CA2101's default level (note).
            row("CA2101/1", "p/i.cs", 3, "hierarchical id", "low"),
            row("java/path-injection", "j/F.java", 4, "extension rule by index", "low"),
            row("java/path-injection", "j/G.java", 5, "extension rule by id alone", "low"),
        ]
    );
    assert_eq!(f[0]["cwe"], serde_json::json!(["79"]), "CWE from the rule's taxa relationship");
    assert_eq!(f[1]["cwe"], serde_json::json!(["89"]), "CWE from external/cwe/cwe-089");

    let (_, f) = imported(&s, "locations.sarif").await;
    assert_eq!(
        rows(&f),
        vec![
            row("C6001", "C:/work/repo/src/lib/index.c", 11, "via artifacts index", "medium"),
            row("C6002", "C:/Program Files/x.h", 12, "drive letter", "medium"),
            row("C6003", "C:/work/repo/src/m.c", 13, "own base id", "medium"),
            row("C6004", "n.c", 14, "undefined base stays relative", "medium"),
            row("C6005", "Contoso::Widget::Init", 0, "logical only", "medium"),
            row("C6006", "Contoso::Widget::Run", 0, "logical by index", "medium"),
        ]
    );

    let (_, f) = imported(&s, "messages.sarif").await;
    let messages: Vec<&str> = f.iter().map(|x| x["message"].as_str().unwrap()).collect();
    assert_eq!(
        messages,
        vec![
            "Unused variable 'tmp' in main() {not a placeholder}",
            "Other text for x",
            "Generic problem in setup.py.",
            "Tainted data from [here](loc:2) reaches this sink.",
            "Unsafe call to eval (see docs).",
        ]
    );
    // message.markdown is rendered on the finding page, safely.
    let html = s.page(&format!("/findings/{}", f[4]["id"]), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<strong>Unsafe</strong> call to <code>eval</code>"), "{html}");
    assert!(html.contains("<a href=\"https://docs.example/eval\" rel=\"noopener noreferrer\">docs</a>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert"));
    // The finding page turns the embedded link into a link to the related location.
    let html = s.page(&format!("/findings/{}", f[3]["id"]), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<a href=\"#loc-2\">here</a>"), "{html}");
    assert!(html.contains("id=\"loc-2\""), "{html}");

    let (_, f) = imported(&s, "levels.sarif").await;
    let sev: Vec<(&str, &str)> =
        f.iter().map(|x| (x["message"].as_str().unwrap(), x["severity"].as_str().unwrap())).collect();
    assert_eq!(
        sev,
        vec![
            ("explicit level wins", "low"),
            ("kind review means none", "info"),
            ("override beats default", "high"),
            ("rule default", "high"),
            ("warning when nothing says", "medium"),
            ("security severity critical", "critical"),
            ("result security severity low", "low"),
            ("kind fail keeps default warning", "medium"),
        ]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_that_is_not_sarif_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let job = s.upload(p, &[("scan.json", fixture("spec/not_sarif.json"))]).await;
    let (status, message) = s.wait_job(&job).await;
    assert_eq!(status, "failed");
    assert!(
        message.contains("not a SARIF 2.1.0 log") && message.contains("runs[0].tool has no \"driver\""),
        "{message}"
    );
    // The project this first upload was for is gone, and so are the upload's files.
    let projects = s.api(Method::GET, "/projects").send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(projects["projects"], serde_json::json!([]), "the failed first import left its package");
    let uploads: Vec<_> = std::fs::read_dir(s.data.join("uploads")).unwrap().collect();
    assert!(uploads.is_empty(), "upload residue: {uploads:?}");

    // A project that already has results keeps them when a later import fails.
    let p = s.create_project("pkg").await;
    s.import(p, &[("bom.sarif", fixture("spec/bom.sarif"))]).await;
    let job = s.upload(p, &[("scan.json", fixture("spec/not_sarif.json"))]).await;
    assert_eq!(s.wait_job(&job).await.0, "failed");
    assert_eq!(s.findings(p, "").await.len(), 1);
    s.stop().await;
}
