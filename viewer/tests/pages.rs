//! The HTML pages: who may see them, escaping, filters, triage.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn only_front_door_proofs_see_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let paths = ["/".to_string(), format!("/projects/{p}"), "/findings/1".to_string()];
    for path in &paths {
        let url = format!("{}{path}", s.base);
        let denied = [
            ("no header", s.client.get(&url)),
            ("forged user header", s.client.get(&url).header("Authorization", "SWAMP alice")),
            ("empty proof", s.client.get(&url).header("X-Vrun-Proof", "")),
            ("proof under another key", s.client.get(&url).header("X-Vrun-Proof", other_key_proof("alice"))),
            ("stale proof", s.client.get(&url).header("X-Vrun-Proof", stale_proof("alice"))),
            ("API key", s.client.get(&url).header("API-Key", KEY)),
            ("System-Key", s.client.get(&url).header("Authorization", format!("System-Key {KEY}"))),
            ("X-Swamp-User", s.client.get(&url).header("X-Swamp-User", "alice")),
        ];
        for (what, req) in denied {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with {what}");
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
            assert!(r.text().await.unwrap().contains("Access denied"));
        }
    }
    let r = s.page("/", "bob").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("pkg"));
    // The front door decides who may see the viewer; a proof for a user added since the
    // VM started (not in its run.json) is honoured.
    let r = s.page(&format!("/projects/{p}"), "carol").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The bare context path redirects to the projects page.
    let r = s.page("", "alice").send().await.unwrap();
    assert_eq!((r.status(), r.url().path()), (StatusCode::OK, format!("{CTX}/").as_str()));
    assert_eq!(s.page("/projects/999", "alice").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(s.page("/findings/999", "alice").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_data_is_escaped_and_filters_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    s.import(p, &[("m.sarif", fixture("multi_tool.sarif"))]).await;
    let html = s.page(&format!("/projects/{p}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>alert"), "tool text reached the page unescaped");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    assert!(html.contains("web/&lt;index&gt;.html:3"));
    assert!(html.contains("src/ü/日本.c:10"));
    assert!(html.contains("1–6 of 6 findings"));

    let count = |q: &'static str| {
        let s = &s;
        async move {
            let html = s.page(&format!("/projects/{p}?{q}"), "alice").send().await.unwrap().text().await.unwrap();
            html.matches("<td class=\"status\">").count()
        }
    };
    assert_eq!(count("severity=high").await, 2);
    assert_eq!(count("tool=gcc&severity=").await, 3);
    assert_eq!(count("status=false_positive").await, 0);
    assert_eq!(count("q=moved").await, 1);
    assert_eq!(count("severity=bogus&sort=nonsense&dir=sideways&page=x").await, 6, "bad parameters fall back");

    // Sorting: the first row follows the sort column.
    let first_sev = |q: &'static str| {
        let s = &s;
        async move {
            let html = s.page(&format!("/projects/{p}?{q}"), "alice").send().await.unwrap().text().await.unwrap();
            let at = html.find("<td class=\"sev ").unwrap() + 15;
            html[at..].split('"').next().unwrap().to_owned()
        }
    };
    assert_eq!(first_sev("sort=severity").await, "high");
    assert_eq!(first_sev("sort=severity&dir=desc").await, "info");

    // The finding page shows every location and message, escaped.
    let f = s.findings(p, "tool=clang-tidy").await;
    let moved = f.iter().find(|x| x["rule"] == "bugprone-use-after-move").unwrap()["id"].as_i64().unwrap();
    let html = s.page(&format!("/findings/{moved}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("src/main.cpp:42") && html.contains("src/main.cpp:40") && html.contains("move occurred here")
    );
    let xss = f.iter().find(|x| x["rule"] == "misc-html").unwrap()["id"].as_i64().unwrap();
    let html = s.page(&format!("/findings/{xss}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>alert") && html.contains("&lt;script&gt;"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_form_persists_and_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    s.import(p, &[("x.xml", fixture("swamp_cppcheck.scarf.xml"))]).await;
    let id = s.findings(p, "").await[0]["id"].as_i64().unwrap();
    let url = format!("{}/findings/{id}", s.base);

    // Posting redirects (303) back to the finding page.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect
        .post(&url)
        .header("X-Vrun-Proof", proof("bob"))
        .form(&[("status", "confirmed"), ("comment", "real bug <b>here</b>")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("{CTX}/findings/{id}"));
    let html = s.page(&format!("/findings/{id}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<option value=\"confirmed\" selected>"));
    assert!(html.contains("real bug &lt;b&gt;here&lt;/b&gt;</textarea>"));
    assert!(html.contains("Last triaged by bob"));
    assert_eq!(s.findings(p, "status=confirmed").await.len(), 1);

    let refused = [
        ("forged", vec![("status", "fixed")], vec![], StatusCode::FORBIDDEN),
        ("alice", vec![("status", "wontfix")], vec![], StatusCode::BAD_REQUEST),
        ("alice", vec![("comment", "no status")], vec![], StatusCode::BAD_REQUEST),
        ("alice", vec![("status", "fixed")], vec![("sec-fetch-site", "cross-site")], StatusCode::FORBIDDEN),
    ];
    for (user, form, headers, expected) in refused {
        let mut req = if user == "forged" {
            s.client.post(&url).header("Authorization", "SWAMP alice")
        } else {
            s.client.post(&url).header("X-Vrun-Proof", proof(user))
        }
        .form(&form);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), expected, "{user} {form:?}");
    }
    let r = s
        .client
        .post(format!("{}/findings/999", s.base))
        .header("X-Vrun-Proof", proof("alice"))
        .form(&[("status", "fixed")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.findings(p, "status=confirmed").await.len(), 1, "refused posts changed nothing");
    s.stop().await;
}

/// A proof made with some other viewer's key.
fn other_key_proof(user: &str) -> String {
    vrun_proto::frontdoor::make_proof(&"f".repeat(64), user, viewer::db::now())
}

/// A proof made well outside the window the viewer accepts.
fn stale_proof(user: &str) -> String {
    vrun_proto::frontdoor::make_proof(KEY, user, viewer::db::now() - 2 * vrun_proto::frontdoor::PROOF_WINDOW_SECS)
}
