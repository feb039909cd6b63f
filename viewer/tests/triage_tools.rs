//! What a triager uses daily: facets and filters, bulk triage of a selection, new /
//! present / gone, CSV and SARIF exports, and keyset pages through 50,000 findings.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn res(rule: &str, file: &str, line: u32, msg: &str, extra: &str) -> String {
    format!(
        r#"{{"ruleId":"{rule}","message":{{"text":"{msg}"}}{extra},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"{file}"}},"region":{{"startLine":{line}}}}}}}]}}"#
    )
}

async fn html(s: &Server, path: &str) -> String {
    s.page(path, "alice").send().await.unwrap().text().await.unwrap()
}

fn rows(html: &str) -> usize {
    html.matches("<td class=\"status\">").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn facets_filters_bulk_triage_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("pkg").await;
    let codeql = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"CodeQL","rules":[
        {"id":"sql","properties":{"tags":["external/cwe/cwe-89"]}}]}},"results":["#
        .to_owned()
        + &[
            res("sql", "src/db/q.py", 3, "Query built from user input", ",\"level\":\"error\""),
            res("sql", "src/db/r.py", 4, "=HYPERLINK(\\\"x\\\") in a \\\"quoted\\\" message", ",\"level\":\"error\""),
            res("sql", "lib/x.py", 5, "Über-long query", ",\"level\":\"warning\""),
        ]
        .join(",")
        + "]}]}";
    s.import(p, &[("c.sarif", codeql.into_bytes())]).await;
    s.import(p, &[("s.sarif", sarif("semgrep", &[result("xss", "src/web/a.js", 1, "reflected")]))]).await;

    // Facets above the table count the selection and narrow it when followed.
    let page = html(&s, &format!("/projects/{p}")).await;
    let facets = &page[page.find("id=\"facets\"").unwrap()..page.find("id=\"count\"").unwrap()];
    for needle in ["CodeQL (3)", "semgrep (1)", "sql (3)", "high (2)", "medium (2)", "new (4)"] {
        assert!(facets.contains(needle), "{needle} in {facets}");
    }
    let tool_link = format!("{CTX}/projects/{p}?tool=CodeQL");
    assert!(facets.contains(&format!("href=\"{tool_link}\"")), "{facets}");
    // The package list counts too.
    let index = html(&s, "/").await;
    assert!(index.contains("CodeQL (3)") && index.contains("sql (3)") && index.contains("new (4)"), "{index}");

    for (query, n) in [
        ("cwe=89", 3),
        ("cwe=CWE-89", 3),
        ("path=src/", 3),
        ("path=src/db/", 2),
        ("rule=xss", 1),
        ("q=über", 1),
        ("q=ÜBER", 1),
        ("severity=High", 2),
        ("tool=CodeQL&path=lib/", 1),
    ] {
        assert_eq!(rows(&html(&s, &format!("/projects/{p}?{query}")).await), n, "{query}");
    }

    // Bulk triage of a selection: all of it, each with a history entry; nothing else.
    let token = s.csrf(&format!("/projects/{p}"), "alice").await;
    let url = format!("{}/projects/{p}/triage", s.base);
    let post = |form: Vec<(&'static str, String)>| {
        s.client.post(&url).header("X-Vrun-Proof", proof("alice")).form(&form).send()
    };
    let r = post(vec![("status", "ignored".into()), ("path", "src/db/".into())]).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no token");
    let r = post(vec![
        ("status", "false_positive".into()),
        ("comment", "ORM escapes these".into()),
        ("tool", "CodeQL".into()),
        ("path", "src/db/".into()),
        ("csrf", token.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "redirected back to the list");
    assert!(r.url().as_str().contains("tool=CodeQL&path=src%2Fdb%2F"), "{}", r.url());
    let all = s.findings(p, "").await;
    let fp: Vec<&str> =
        all.iter().filter(|f| f["status"] == "false_positive").map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(fp, ["src/db/q.py", "src/db/r.py"]);
    let one = all.iter().find(|f| f["file"] == "src/db/q.py").unwrap()["id"].as_i64().unwrap();
    let detail = html(&s, &format!("/findings/{one}")).await;
    assert!(detail.contains("<table id=\"history\">") && detail.contains("ORM escapes these"), "{detail}");

    // New / present / gone after a second analysis of CodeQL without q.py, with a new one.
    let codeql2 = sarif(
        "CodeQL",
        &[
            res("sql", "src/db/r.py", 4, "=HYPERLINK(\\\"x\\\") in a \\\"quoted\\\" message", ",\"level\":\"error\""),
            res("sql", "lib/x.py", 5, "Über-long query", ",\"level\":\"warning\""),
            res("sql", "lib/y.py", 9, "Another query", ""),
        ],
    );
    s.import(p, &[("c2.sarif", codeql2)]).await;
    for (query, n) in [("change=new", 2), ("change=present", 2), ("change=gone", 1), ("tool=CodeQL&change=gone", 1)] {
        assert_eq!(rows(&html(&s, &format!("/projects/{p}?{query}")).await), n, "{query}");
    }

    // CSV of a selection: header, one line per finding, formula-looking text defused.
    let csv = s.page(&format!("/projects/{p}/export.csv?tool=CodeQL"), "alice").send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(lines[0].starts_with("id,severity,tool,rule,cwe,file,line,message,status,reason"));
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\") in a \"\"quoted\"\" message\""), "{csv}");
    assert!(csv.contains("\"false_positive\",\"ORM escapes these\""), "{csv}");
    assert!(csv.contains("\"CWE-89\""));

    // SARIF of everything: valid 2.1.0 with one run per tool, triage as suppressions,
    // and it imports back (into another project) with the same findings.
    let sarif_text = html(&s, &format!("/projects/{p}/export.sarif")).await;
    let log: Value = serde_json::from_str(&sarif_text).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter().map(|r| r["tool"]["driver"]["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["CodeQL", "semgrep"]
    );
    let results: Vec<&Value> = runs.iter().flat_map(|r| r["results"].as_array().unwrap()).collect();
    assert_eq!(results.len(), 5);
    let suppressed: Vec<&Value> = results.iter().filter(|r| r.get("suppressions").is_some()).copied().collect();
    assert_eq!(suppressed.len(), 2);
    assert_eq!(suppressed[0]["suppressions"][0]["status"], "accepted");
    assert!(suppressed[0]["suppressions"][0]["justification"].as_str().unwrap().contains("ORM escapes these"));
    assert!(results.iter().any(|r| r["baselineState"] == "absent"));
    let p2 = s.create_project("copy").await;
    s.import(p2, &[("export.sarif", sarif_text.into_bytes())]).await;
    let copy = s.findings(p2, "").await;
    let key = |l: &[Value]| {
        let mut v: Vec<(String, String, i64, String)> = l
            .iter()
            .map(|f| {
                let t = |k: &str| f[k].as_str().unwrap().to_owned();
                (t("tool"), t("file"), f["line"].as_i64().unwrap(), t("message"))
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&copy), key(&s.findings(p, "").await));
    assert_eq!(copy.iter().find(|f| f["file"] == "src/db/q.py").unwrap()["cwe"], serde_json::json!(["89"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_findings_paged_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(config(dir.path())).await;
    let p = s.create_project("big").await;
    let mut big = Vec::new();
    viewer::import::synth::write_sarif(&mut big, 50_000, 4).unwrap();
    let t = std::time::Instant::now();
    s.import(p, &[("big.sarif", big)]).await;
    eprintln!("imported 50,000 findings in {:?}", t.elapsed());

    // Following "next" from the first page reaches the last one; every finding once.
    let mut seen = std::collections::HashSet::new();
    let mut url = format!("/projects/{p}/findings?per_page=5000&sort=file");
    let mut pages = 0;
    loop {
        let v: Value = s.api(reqwest::Method::GET, &url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        assert_eq!(v["page"].as_i64(), Some(pages));
        for f in v["findings"].as_array().unwrap() {
            assert!(seen.insert(f["id"].as_i64().unwrap()), "a finding on two pages");
        }
        match v["next"].as_str() {
            Some(c) => url = format!("/projects/{p}/findings?per_page=5000&sort=file&after={c}"),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (10, 50_000));

    // The page walks the same way; a deep page costs what the first does.
    let timed = |path: String| {
        let s = &s;
        async move {
            let t = std::time::Instant::now();
            let h = html(s, &path).await;
            (t.elapsed(), h)
        }
    };
    let (first, h) = timed(format!("/projects/{p}")).await;
    assert!(h.contains("1–200 of 50000 findings · page 1 of 250"), "{}", &h[h.find("id=\"count\"").unwrap()..][..80]);
    // A jump far beyond the end is the last page, numbered as such.
    let (_, h) = timed(format!("/projects/{p}?page=9223372036854775807")).await;
    assert!(
        h.contains("49801–50000 of 50000 findings · page 250 of 250"),
        "{}",
        &h[h.find("id=\"count\"").unwrap()..][..80]
    );
    // From the last page, "previous" goes back by keyset.
    let at = h.find("rel=\"prev\" href=\"").unwrap() + 17;
    let prev = h[at..].split('"').next().unwrap().replace("&amp;", "&");
    let prev = prev.strip_prefix(CTX).unwrap().to_owned();
    let (deep, h) = timed(prev).await;
    assert!(
        h.contains("49601–49800 of 50000 findings · page 249 of 250"),
        "{}",
        &h[h.find("id=\"count\"").unwrap()..][..80]
    );
    eprintln!("first page {first:?}, page 249 by keyset {deep:?}");
    assert!(deep < first * 3 + std::time::Duration::from_millis(200), "first {first:?}, deep {deep:?}");
    s.stop().await;
}
