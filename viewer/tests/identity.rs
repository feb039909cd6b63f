//! A finding is recognised across imports by what the file says about it, never by its
//! position: triage stays on the right finding when results are reordered, one is removed,
//! or lines are added above. Also: databases of schema version 1 keep their triage.

mod common;

use common::*;
use serde_json::Value;

/// Results with the same rule and file and similar messages: what a real CppCheck or
/// Pylint run produces many of.
fn results(lines: &[(u32, &str)]) -> Vec<String> {
    lines.iter().map(|(l, m)| result("W0612", "app.py", *l, m)).collect()
}

fn status_by_message(list: &[Value]) -> Vec<(String, i64, String, bool)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|f| {
            (
                f["message"].as_str().unwrap().to_owned(),
                f["line"].as_i64().unwrap(),
                f["status"].as_str().unwrap().to_owned(),
                f["present"].as_bool().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_stays_on_its_finding() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let base = [(10, "unused a"), (20, "unused b"), (30, "unused c"), (40, "unused b"), (50, "unused b")];
    s.import(p, &[("v1.sarif", sarif("pylint", &results(&base)))]).await;
    let first = s.findings(p, "").await;
    let id_of = |list: &[Value], line: i64| list.iter().find(|f| f["line"] == line).unwrap()["id"].as_i64().unwrap();
    s.triage(id_of(&first, 30), "false_positive", "c is used by eval").await;
    s.triage(id_of(&first, 40), "escalated", "second b").await;

    // 1. Reordered: nothing moves.
    let mut reordered = base;
    reordered.reverse();
    let msg = s.import(p, &[("v2.sarif", sarif("pylint", &results(&reordered)))]).await;
    assert!(msg.contains("(0 new)"), "{msg}");
    let after = s.findings(p, "").await;
    assert_eq!(id_of(&after, 30), id_of(&first, 30));
    assert_eq!(
        status_by_message(&after),
        status_by_message(&first)
            .into_iter()
            .map(|(m, l, _, pr)| {
                let st = match l {
                    30 => "false_positive",
                    40 => "escalated",
                    _ => "new",
                };
                (m, l, st.to_owned(), pr)
            })
            .collect::<Vec<_>>()
    );

    // 2. One result removed (the first "unused b"): the others keep their triage; the removed
    //    one is gone, and no other finding is greyed.
    let removed = [(10, "unused a"), (30, "unused c"), (40, "unused b"), (50, "unused b")];
    s.import(p, &[("v3.sarif", sarif("pylint", &results(&removed)))]).await;
    assert_eq!(
        status_by_message(&s.findings(p, "").await),
        vec![
            ("unused a".into(), 10, "new".into(), true),
            ("unused b".into(), 20, "new".into(), false),
            ("unused b".into(), 40, "escalated".into(), true),
            ("unused b".into(), 50, "new".into(), true),
            ("unused c".into(), 30, "false_positive".into(), true),
        ]
    );

    // 3. Seven lines added at the top of the file: every finding moves; triage follows.
    let shifted = [(17, "unused a"), (37, "unused c"), (47, "unused b"), (57, "unused b")];
    let msg = s.import(p, &[("v4.sarif", sarif("pylint", &results(&shifted)))]).await;
    assert!(msg.contains("(0 new)"), "{msg}");
    let now = s.findings(p, "").await;
    assert_eq!(
        status_by_message(&now),
        vec![
            ("unused a".into(), 17, "new".into(), true),
            ("unused b".into(), 20, "new".into(), false),
            ("unused b".into(), 47, "escalated".into(), true),
            ("unused b".into(), 57, "new".into(), true),
            ("unused c".into(), 37, "false_positive".into(), true),
        ]
    );
    assert_eq!(id_of(&now, 37), id_of(&first, 30), "the same row, so its history too");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_fingerprints_decide_identity() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let with_fp = |line: u32, msg: &str, fp: &str| {
        format!(
            r#"{{"ruleId":"js/xss","message":{{"text":"{msg}"}},"partialFingerprints":{{"primaryLocationLineHash":"{fp}"}},
            "locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"a.js"}},"region":{{"startLine":{line}}}}}}}]}}"#
        )
    };
    s.import(p, &[("a", sarif("CodeQL", &[with_fp(5, "xss", "aaaa:1"), with_fp(9, "xss", "bbbb:1")]))]).await;
    let first = s.findings(p, "").await;
    let b = first.iter().find(|f| f["line"] == 9).unwrap()["id"].as_i64().unwrap();
    s.triage(b, "mitigated", "escaped by the template").await;
    // The tool says which is which, even when lines and order change in a way an offset
    // could misread (b moved above a).
    s.import(p, &[("b", sarif("CodeQL", &[with_fp(3, "xss", "bbbb:1"), with_fp(40, "xss", "aaaa:1")]))]).await;
    let after = s.findings(p, "").await;
    let bb = after.iter().find(|f| f["id"] == b).unwrap();
    assert_eq!((bb["line"].as_i64(), bb["status"].as_str()), (Some(3), Some("mitigated")));
    assert_eq!(after.len(), 2);
    s.stop().await;
}

/// A database saved by the previous version (schema 1, status `confirmed`) opens with the
/// status mapped to `unresolved`, its triage in the history, and re-imports match it.
#[tokio::test(flavor = "multi_thread")]
async fn version_1_databases_keep_their_triage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("viewer.db")).unwrap();
        conn.execute_batch(include_str!("../../sql/viewer/0001_init.sql")).unwrap();
        conn.execute_batch(
            "PRAGMA application_id = 1448236631; PRAGMA user_version = 1;
             INSERT INTO projects VALUES (1, 'pkg', 0);
             INSERT INTO imports VALUES (1, 1, 'j', 0);
             INSERT INTO findings (id, project_id, fingerprint, tool, rule, severity, file, line, message,
                                   first_import, last_import, triage_status, triage_comment, triage_user, triage_time)
             VALUES (7, 1, 'old-fp', 'gcc', '-Wformat', 2, 'src/b.c', 9, 'format expects int', 1, 1,
                     'confirmed', 'real bug', 'alice', 1700000000);
             INSERT INTO locations VALUES (7, 0, 'src/b.c', 9, '');",
        )
        .unwrap();
    }
    let s = Server::start(config(dir.path())).await;
    let f = s.findings(1, "").await;
    assert_eq!((f[0]["status"].as_str(), f[0]["fingerprint"].as_str()), (Some("unresolved"), Some("old-fp")));
    let html = s.page("/findings/7", "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("real bug") && html.contains("alice"), "{html}");
    // The same finding, three lines lower, from a re-import: matched, not new.
    let msg = s.import(1, &[("r", sarif("gcc", &[result("-Wformat", "src/b.c", 12, "format expects int")]))]).await;
    assert!(msg.contains("(0 new)"), "{msg}");
    let f = s.findings(1, "").await;
    assert_eq!((f.len(), f[0]["id"].as_i64(), f[0]["line"].as_i64()), (1, Some(7), Some(12)));
    // The rebuilt tables kept their references: deleting the project cascades to all.
    let r = s.api(reqwest::Method::DELETE, "/projects/1").send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    let conn = rusqlite::Connection::open(s.data.join("viewer.db")).unwrap();
    for table in ["findings", "locations", "triage_history"] {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "{table} kept rows of a deleted project");
    }
    let fk: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 0);
    s.stop().await;
}
