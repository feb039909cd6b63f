//! The REST API, `/healthz` and `/metrics` against the real daemon (stand-in jobs that hold
//! their job lock like vruntask, libvirt's test driver): roles, bad input that changes
//! nothing, start/stop/kill with no job left, export and delete of stored databases, the
//! job log, the event stream, and metrics that move as they should.

mod common;

use std::time::Duration;

use common::{eventually, pair, pid_alive, runtime, Env};
use reqwest::{Method, StatusCode};
use serde_json::Value as J;
use vrun_proto::methods::StoreViewer;

struct Api {
    base: String,
    http: reqwest::Client,
    admin: String,
    launcher: String,
    metrics: String,
}

impl Api {
    fn new(d: &common::Daemon) -> Api {
        let read = |role: &str| std::fs::read_to_string(d.secret(role)).unwrap().trim().to_string();
        Api {
            base: d.url.trim_end_matches("/RPC2").to_string(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            admin: read("admin"),
            launcher: read("launcher"),
            metrics: read("metrics"),
        }
    }

    /// (status, JSON body or the text as a JSON string) of a request as `role` ("" = none).
    async fn req(&self, method: Method, path: &str, role: &str, body: Option<&str>) -> (StatusCode, J) {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        let secret = match role {
            "admin" => Some(&self.admin),
            "launcher" => Some(&self.launcher),
            "metrics" => Some(&self.metrics),
            _ => None,
        };
        if let Some(s) = secret {
            rq = rq.basic_auth(role, Some(s));
        }
        if let Some(b) = body {
            rq = rq.header("content-type", "application/json").body(b.to_string());
        }
        let resp = rq.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(J::String(text)))
    }
}

fn fault(body: &J) -> i64 {
    body["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[test]
fn roles_bad_input_and_the_viewer_lifecycle_through_rest() {
    let env = Env::new();
    let d = env.start(&[]);
    let api = Api::new(&d);
    let rt = runtime();
    rt.block_on(async {
        // No credentials: healthz only.
        let (st, body) = api.req(Method::GET, "/healthz", "", None).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, Some("ok\n")));
        let (st, body) = api.req(Method::GET, "/api/v1/viewers", "", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::UNAUTHORIZED, 8));
        // Roles: the launcher may start and look at its pair, not list, stop or kill.
        assert_eq!(api.req(Method::GET, "/api/v1/viewers", "launcher", None).await.0, StatusCode::FORBIDDEN);
        assert_eq!(api.req(Method::GET, "/api/v1/viewers", "metrics", None).await.0, StatusCode::FORBIDDEN);
        // Bad input: a name that cannot be a VM name, a body member nobody knows, no such pair.
        let (st, body) = api.req(Method::POST, "/api/v1/viewers/a;b/CodeDX/start", "launcher", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::BAD_REQUEST, 2));
        let (st, body) =
            api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/start", "launcher", Some(r#"{"usr":"x"}"#)).await;
        assert_eq!((st, fault(&body)), (StatusCode::BAD_REQUEST, 1), "{body}");
        let (st, body) = api.req(Method::GET, "/api/v1/viewers/p1/CodeDX", "launcher", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::NOT_FOUND, 3));
        assert!(env.launches().is_empty(), "a refused request started a job");

        // Start (launcher), again (held, not launched twice), show, list.
        let (st, body) =
            api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/start", "launcher", Some(r#"{"user":"alice"}"#)).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{body}");
        assert_eq!((body["launched"].as_bool(), body["generation"].as_i64()), (Some(true), Some(1)), "{body}");
        let (_, body) = api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/start", "launcher", None).await;
        assert_eq!(body["launched"].as_bool(), Some(false), "{body}");
        let jobs = env.wait_launches(1, Duration::from_secs(20));
        assert_eq!(jobs.len(), 1);
        let (st, body) = api.req(Method::GET, "/api/v1/viewers/p1/CodeDX", "launcher", None).await;
        assert_eq!((st, body["state"].as_str()), (StatusCode::OK, Some("launching")), "{body}");
        assert!(body["history"].as_array().is_some_and(|h| !h.is_empty()), "{body}");
        let (st, body) = api.req(Method::GET, "/api/v1/viewers", "admin", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body["viewers"].as_array().map(Vec::len), Some(1), "{body}");

        // A stored database to export: the job's, as storeviewer keeps it.
        let db = b"a viewer database".to_vec();
        let checksum = hex_sha256(&db);
        d.client()
            .store_viewer(&StoreViewer {
                pair: pair("p1", "CodeDX"),
                generation: 1,
                viewerdb: db.clone(),
                checksum: checksum.clone(),
            })
            .await
            .unwrap();

        // Delete is refused while live, and without the right confirmation; nothing changes.
        let (st, body) =
            api.req(Method::DELETE, "/api/v1/viewers/p1/CodeDX/databases?confirm=p1.CodeDX", "admin", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::CONFLICT, 5), "{body}");
        assert_eq!(
            api.req(Method::DELETE, "/api/v1/viewers/p1/CodeDX/databases", "admin", None).await.0,
            StatusCode::BAD_REQUEST
        );

        // Kill (admin only): answers once the job is gone; the pair is free; the database kept.
        assert_eq!(
            api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/kill", "launcher", None).await.0,
            StatusCode::FORBIDDEN
        );
        assert!(pid_alive(jobs[0].0), "the launcher's refused kill stopped the job");
        let (st, body) = api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/kill", "admin", None).await;
        assert_eq!((st, body["killed"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
        assert!(!pid_alive(jobs[0].0), "kill answered with the job still running");
        let (_, body) = api.req(Method::GET, "/api/v1/viewers/p1/CodeDX", "admin", None).await;
        assert_eq!((body["state"].as_str(), body["reason"].as_str()), (Some("stopped"), Some("killed by an admin")));
        let (_, body) = api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/kill", "admin", None).await;
        assert_eq!(body["killed"].as_bool(), Some(false), "a second kill found something live: {body}");

        // Export: a tar holding the manifest and exactly the stored bytes.
        let resp = api
            .http
            .get(format!("{}/api/v1/viewers/p1/CodeDX/export", api.base))
            .basic_auth("admin", Some(&api.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let tar_bytes = resp.bytes().await.unwrap();
        let mut files = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
            let mut e = entry.unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut content).unwrap();
            files.insert(e.path().unwrap().to_string_lossy().into_owned(), content);
        }
        let archive = format!("p1.CodeDX/g1-{checksum}.archive");
        assert_eq!(files.get(&archive), Some(&db), "export: {:?}", files.keys());
        let manifest: J = serde_json::from_slice(&files["p1.CodeDX/manifest.json"]).unwrap();
        assert_eq!((manifest["sha256"].as_str(), manifest["generation"].as_i64()), (Some(checksum.as_str()), Some(1)));

        // Delete with confirmation (admin): gone, and export says so.
        let (st, body) =
            api.req(Method::DELETE, "/api/v1/viewers/p1/CodeDX/databases?confirm=p1.other", "admin", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::BAD_REQUEST, 1));
        let (st, body) =
            api.req(Method::DELETE, "/api/v1/viewers/p1/CodeDX/databases?confirm=p1.CodeDX", "admin", None).await;
        assert_eq!((st, body["deleted"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
        assert_eq!(
            api.req(Method::GET, "/api/v1/viewers/p1/CodeDX/export", "admin", None).await.0,
            StatusCode::NOT_FOUND
        );
        assert!(
            std::fs::read_dir(d.state_dir.join("archives/p1/CodeDX")).unwrap().next().is_none(),
            "archive file left"
        );

        // The pair is free: the next start is generation 2; its log is readable (admin).
        let (_, body) = api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/start", "admin", None).await;
        assert_eq!((body["launched"].as_bool(), body["generation"].as_i64()), (Some(true), Some(2)), "{body}");
        env.wait_launches(2, Duration::from_secs(20));
        let (st, _) = api.req(Method::GET, "/api/v1/viewers/p1/CodeDX/log?generation=2", "admin", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            api.req(Method::GET, "/api/v1/viewers/p1/CodeDX/log?generation=99", "admin", None).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.req(Method::GET, "/api/v1/viewers/p1/CodeDX/log", "launcher", None).await.0,
            StatusCode::FORBIDDEN
        );
        // Stop goes the normal way: stopping, until the job saves and reports.
        let (st, _) = api.req(Method::POST, "/api/v1/viewers/p1/CodeDX/stop", "admin", None).await;
        assert_eq!(st, StatusCode::ACCEPTED);
        let (_, body) = api.req(Method::GET, "/api/v1/viewers/p1/CodeDX", "admin", None).await;
        assert_eq!(body["state"].as_str(), Some("stopping"));
        // The OpenAPI description is served and names every route.
        let (st, doc) = api.req(Method::GET, "/api/v1/openapi.json", "", None).await;
        assert_eq!(st, StatusCode::OK);
        for path in ["/api/v1/viewers/{project}/{viewer}/kill", "/api/v1/viewers/{project}/{viewer}/events", "/metrics"]
        {
            assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
        }
    });
}

#[test]
fn metrics_need_a_role_and_move_with_launches_and_calls() {
    let env = Env::new();
    let d = env.start(&[]);
    let api = Api::new(&d);
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(api.req(Method::GET, "/metrics", "", None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(api.req(Method::GET, "/metrics", "launcher", None).await.0, StatusCode::FORBIDDEN);
        let text = |b: J| b.as_str().unwrap().to_string();
        let before = text(api.req(Method::GET, "/metrics", "metrics", None).await.1);
        assert!(before.contains("vrun_launches_total 0\n"), "{before}");
        assert!(before.contains("vrun_viewers{state=\"launching\"} 0\n"), "{before}");
        // The metrics secret opens nothing else.
        let (st, body) = api.req(Method::POST, "/api/v1/viewers/m1/CodeDX/start", "metrics", None).await;
        assert_eq!((st, fault(&body)), (StatusCode::FORBIDDEN, 8));
        for p in ["m1", "m2"] {
            api.req(Method::POST, &format!("/api/v1/viewers/{p}/CodeDX/start"), "launcher", None).await;
        }
        // A fault counted by method and code.
        let _ = d.client().viewer_status(&pair("nobody", "CodeDX")).await;
        let after = text(api.req(Method::GET, "/metrics", "admin", None).await.1);
        assert!(after.contains("vrun_launches_total 2\n"), "{after}");
        assert!(after.contains("vrun_viewers{state=\"launching\"} 2\n"), "{after}");
        assert!(after.contains("vrun_rpc_requests_total{method=\"agentMonitor.launchViewer\"} 3\n"), "{after}");
        assert!(
            after.contains("vrun_rpc_faults_total{method=\"agentMonitor.viewerStatus\",code=\"3\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("vrun_rpc_faults_total{method=\"agentMonitor.launchViewer\",code=\"8\"} 1\n"),
            "{after}"
        );
        assert!(after.contains("vrun_store_commit_seconds_count"), "{after}");
        eventually("both jobs started", Duration::from_secs(20), || env.launches().len() == 2);
        let started = text(api.req(Method::GET, "/metrics", "admin", None).await.1);
        assert!(started.contains("vrun_job_starts_total 2\n"), "{started}");
    });
}

#[test]
fn the_event_stream_sends_the_state_then_each_transition() {
    let env = Env::new();
    let d = env.start(&[]);
    let api = Api::new(&d);
    let rt = runtime();
    rt.block_on(async {
        api.req(Method::POST, "/api/v1/viewers/e1/CodeDX/start", "launcher", None).await;
        let mut resp = api
            .http
            .get(format!("{}/api/v1/viewers/e1/CodeDX/events", api.base))
            .basic_auth("launcher", Some(&api.launcher))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut seen = String::new();
        read_until(&mut resp, &mut seen, "event: state").await;
        d.client().abort_viewer(&pair("e1", "CodeDX")).await.unwrap();
        read_until(&mut resp, &mut seen, "\"to\":\"stopping\"").await;
        assert!(seen.contains("event: transition"), "{seen}");
    });
}

/// Reads the stream into `seen` until it holds `want` (bounded).
async fn read_until(resp: &mut reqwest::Response, seen: &mut String, want: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(end, resp.chunk()).await.expect("event in time").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
    }
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
