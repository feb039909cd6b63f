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
    assert_eq!(count("sort=nonsense&dir=sideways&page=x").await, 6, "bad parameters fall back");
    // A filter value that names nothing matches nothing, and the page says which filter.
    assert_eq!(count("severity=bogus").await, 0);
    assert_eq!(count("severity=HIGH").await, 2, "severity is case-insensitive");
    let html = s.page(&format!("/projects/{p}?tool=Nope"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Tool = <strong>Nope</strong>"), "the active filter is shown");
    assert!(html.contains("<option value=\"Nope\" selected>Nope</option>"), "the menu shows it too");

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

    let bob = s.csrf(&format!("/findings/{id}"), "bob").await;
    let alice = s.csrf(&format!("/findings/{id}"), "alice").await;
    assert_ne!(alice, bob, "tokens are per user");

    // Posting redirects (303) back to the finding page.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect
        .post(&url)
        .header("X-Vrun-Proof", proof("bob"))
        .form(&[("status", "unresolved"), ("comment", "real bug <b>here</b>"), ("csrf", &bob)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("{CTX}/findings/{id}"));
    let html = s.page(&format!("/findings/{id}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<option value=\"unresolved\" selected>"));
    assert!(html.contains("real bug &lt;b&gt;here&lt;/b&gt;</textarea>"));
    assert!(html.contains("Last triaged by bob"));
    assert_eq!(s.findings(p, "status=unresolved").await.len(), 1);

    let host = s.base.split('/').nth(2).unwrap().to_owned();
    let own_origin = format!("http://{host}");
    let refused = [
        // A forged user header, even with a valid form token: no proof, no page.
        ("forged", vec![("status", "fixed"), ("csrf", &alice)], vec![], StatusCode::FORBIDDEN),
        ("alice", vec![("status", "wontfix"), ("csrf", &alice)], vec![], StatusCode::BAD_REQUEST),
        ("alice", vec![("comment", "no status"), ("csrf", &alice)], vec![], StatusCode::BAD_REQUEST),
        (
            "alice",
            vec![("status", "fixed"), ("csrf", &alice)],
            vec![("sec-fetch-site", "cross-site")],
            StatusCode::FORBIDDEN,
        ),
        // A forged form: no token, another user's token, or a foreign Origin (no fetch metadata).
        ("alice", vec![("status", "fixed")], vec![], StatusCode::FORBIDDEN),
        ("alice", vec![("status", "fixed"), ("csrf", &bob)], vec![], StatusCode::FORBIDDEN),
        (
            "alice",
            vec![("status", "fixed"), ("csrf", &alice)],
            vec![("origin", "https://evil.example")],
            StatusCode::FORBIDDEN,
        ),
        ("alice", vec![("status", "fixed"), ("csrf", &alice)], vec![("origin", "null")], StatusCode::FORBIDDEN),
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
        .form(&[("status", "fixed"), ("csrf", &alice)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.findings(p, "status=unresolved").await.len(), 1, "refused posts changed nothing");

    // The same form from this viewer's own origin is accepted, and the history has both.
    let r = no_redirect
        .post(&url)
        .header("X-Vrun-Proof", proof("alice"))
        .header("Origin", &own_origin)
        .form(&[("status", "mitigated"), ("comment", "input is escaped"), ("csrf", &alice)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = s.page(&format!("/findings/{id}"), "alice").send().await.unwrap().text().await.unwrap();
    let history = &html[html.find("<table id=\"history\">").expect("a history table")..];
    let (m, u) = (history.find("input is escaped").unwrap(), history.find("real bug").unwrap());
    assert!(m < u, "newest first: {history}");
    assert!(history.contains("<time datetime=\"") && history.contains("mitigated") && history.contains("bob"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn page_defects_of_the_chromium_review() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let long_path = format!("src/{}/x.c", "d".repeat(4096));
    let long_msg = "m".repeat(16 * 1024);
    let results = vec![
        result("R1", &long_path, 1, "long path"),
        result("R2", "a.c", 2, &long_msg),
        result("R3", "src/evil\u{202E}cod.exe", 3, "bidi"),
    ];
    s.import(p, &[("r.sarif", sarif("lint", &results))]).await;
    let f = s.findings(p, "").await;

    // Trailing slashes answer the page, not a JSON 404.
    for path in [format!("/projects/{p}/"), format!("/findings/{}/", f[0]["id"])] {
        let r = s.page(&path, "alice").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    }

    // Security headers on pages (and on error pages).
    for path in ["/".to_string(), format!("/projects/{p}"), "/findings/999".into()] {
        let r = s.page(&path, "alice").send().await.unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(h("content-security-policy").contains("frame-ancestors 'none'"), "{path}");
        assert!(h("content-security-policy").contains("default-src 'none'"), "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("cache-control"), "no-store", "{path}");
    }

    let html = s.page(&format!("/projects/{p}"), "alice").send().await.unwrap().text().await.unwrap();
    // Bidi override shown escaped, never raw.
    assert!(!html.contains('\u{202E}') && html.contains("src/evil[U+202E]cod.exe:3"));
    // Long messages are cut with a marker in the list, whole on the finding page.
    assert!(html.contains(&format!("{}…", "m".repeat(300))) && !html.contains(&"m".repeat(301)));
    let long_id = f.iter().find(|x| x["rule"] == "R2").unwrap()["id"].as_i64().unwrap();
    let detail = s.page(&format!("/findings/{long_id}"), "alice").send().await.unwrap().text().await.unwrap();
    assert!(detail.contains(&long_msg));
    // Accessibility landmarks and table semantics.
    for needle in [
        "<main id=\"main\">",
        "<a class=\"skip\" href=\"#main\">",
        "<caption>Findings</caption>",
        "<th scope=\"col\" aria-sort=\"ascending\">",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(!html.contains("#999"), "the low-contrast grey is gone");
    assert!(detail.contains("<th scope=\"row\">Severity</th>"));
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
