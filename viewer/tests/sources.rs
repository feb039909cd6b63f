//! The source archive (`file2`) and code flows on the finding page: the lines around each
//! location with the line marked, the whole file, snippets when the archive lacks a file,
//! and what is stored kept to the files findings name, within the size bounds.

mod common;

use common::*;
use reqwest::StatusCode;

const DB_PY: &str = "import sqlite3\n\ndef run_query(arg):\n    q = \"SELECT * FROM t WHERE x = '%s'\" % arg\n    cur = sqlite3.connect('d').cursor()\n    cur.execute(q)\n    return cur.fetchall()\n";
const WEB_PY: &str = "from flask import request\n\ndef view():\n    return run_query(request.args['x'])\n";

#[tokio::test(flavor = "multi_thread")]
async fn source_view_code_flows_and_bounded_storage() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("app").await;
    let huge = vec![b'x'; (viewer::import::sources::MAX_FILE_BYTES + 1) as usize];
    let archive = zip(&[
        ("app-1.0/app/db.py", DB_PY.as_bytes()),
        ("app-1.0/app/web.py", WEB_PY.as_bytes()),
        ("app-1.0/app/unrelated.py", b"print('not referenced by any finding')\n"),
        ("app-1.0/app/huge.py", &huge),
    ]);
    let huge_finding = sarif("lint", &[result("E1", "app/huge.py", 1, "in a huge file")]);
    s.import(p, &[("f.sarif", fixture("spec/flows.sarif")), ("h.sarif", huge_finding), ("src.zip", archive)]).await;
    let f = s.findings(p, "tool=CodeQL").await;
    let id = f[0]["id"].as_i64().unwrap();
    let html = s.page(&format!("/findings/{id}"), "alice").send().await.unwrap().text().await.unwrap();

    // The primary location: lines 2..10 of db.py from the archive, line 6 marked.
    assert!(html.contains("<span id=\"L6\" class=\"hit\">    6      cur.execute(q)</span>"), "{html}");
    assert!(html.contains("<span id=\"L2\">"));
    // The code flow: numbered steps, each with location, message and code.
    let flow = &html[html.find("<section class=\"flow\" id=\"flow-1\">").expect("a code flow")..];
    let steps: Vec<&str> = flow.split("<li>").skip(1).collect();
    assert_eq!(steps.len(), 3);
    assert!(steps[0].contains("/home/ci/build/app/web.py:3") && steps[0].contains("request.args is a source"));
    assert!(steps[1].contains("<span id=\"L4\" class=\"hit\">"), "{}", steps[1]);
    // Not in the archive: the tool's snippet instead.
    assert!(steps[2].contains("vendor/lib.py:1") && steps[2].contains("def helper(): pass"));
    // The embedded link goes to the related location.
    assert!(html.contains("<a href=\"#loc-2\">user-provided value</a>"));

    // The whole file, numbered; unknown files are a 404 page.
    let link = format!("/projects/{p}/source?file=%2Fhome%2Fci%2Fbuild%2Fapp%2Fdb.py&line=6");
    let page = s.page(&link, "alice").send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("app-1.0/app/db.py") && page.contains("<span id=\"L7\">    7      return cur.fetchall()</span>")
    );
    let r = s.page(&format!("/projects/{p}/source?file=nope.py"), "alice").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Who may see the viewer is the front door's decision; without its proof, no source.
    let forged = s.client.get(format!("{}/projects/{p}/source?file=app-1.0/app/db.py", s.base));
    let r = forged.header("Authorization", "SWAMP alice").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Stored: only files a finding names, each within the size bound.
    let conn = rusqlite::Connection::open(s.data.join("viewer.db")).unwrap();
    let mut stmt = conn.prepare("SELECT entry FROM sources ORDER BY entry").unwrap();
    let stored: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(stored, ["app-1.0/app/db.py", "app-1.0/app/web.py"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_archive_fails_the_import_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("app").await;
    s.import(p, &[("f.sarif", fixture("spec/flows.sarif"))]).await;
    let before = s.findings(p, "").await;
    let mut broken = zip(&[("app/db.py", DB_PY.as_bytes())]);
    broken.truncate(broken.len() - 30);
    let job = s.upload(p, &[("f.sarif", fixture("spec/bom.sarif")), ("src.zip", broken)]).await;
    let (status, message) = s.wait_job(&job).await;
    assert_eq!(status, "failed");
    assert!(message.contains("src.zip") && message.contains("source archive"), "{message}");
    assert_eq!(s.findings(p, "").await, before);
    s.stop().await;
}
