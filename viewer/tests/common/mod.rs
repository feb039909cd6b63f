//! Shared helpers for the integration tests: a real server on 127.0.0.1:0 and a few
//! API calls. Each test file uses a subset, hence the allow.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use viewer::config::{Config, Limits};

pub const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const CTX: &str = "/proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b";

/// What agent-monitor's front door adds to a page request it forwards for `user`.
pub fn proof(user: &str) -> String {
    vrun_proto::frontdoor::make_proof(KEY, user, viewer::db::now())
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn config(data_dir: &Path) -> Config {
    Config {
        project: "myproj".into(),
        users: vec!["alice".into(), "bob".into()],
        apikey: KEY.into(),
        context: CTX.into(),
        data_dir: data_dir.to_owned(),
        limits: Limits::default(),
    }
}

/// A running in-process server.
pub struct Server {
    /// `http://127.0.0.1:<port><ctx>`
    pub base: String,
    pub data: PathBuf,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), viewer::ServeError>>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = config.data_dir.clone();
        let base = format!("http://{addr}{}", config.context);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(viewer::run(listener, config, async move {
            let _ = rx.await;
        }));
        Server { base, data, client: Client::new(), stop: Some(tx), task: Some(task) }
    }

    /// Graceful shutdown; panics if the server ended with an error.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// A request with the API key.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}/api{path}", self.base)).header("API-Key", KEY)
    }

    /// A page request as `user`, with the proof the front door adds.
    pub fn page(&self, path: &str, user: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base)).header("X-Vrun-Proof", proof(user))
    }

    pub async fn create_project(&self, name: &str) -> i64 {
        let r = self.api(Method::PUT, "/projects").json(&serde_json::json!({ "name": name })).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// Uploads `files` as file1, file2, ... and returns the job id.
    pub async fn upload(&self, project: i64, files: &[(&str, Vec<u8>)]) -> String {
        let mut form = Form::new();
        for (i, (name, bytes)) in files.iter().enumerate() {
            form = form.part(format!("file{}", i + 1), Part::bytes(bytes.clone()).file_name(name.to_string()));
        }
        let r = self.api(Method::POST, &format!("/projects/{project}/analysis")).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{:?}", r.text().await);
        r.json::<Value>().await.unwrap()["jobId"].as_str().unwrap().to_owned()
    }

    /// Polls a job until it is completed or failed; returns (status, message).
    pub async fn wait_job(&self, job: &str) -> (String, String) {
        for _ in 0..1200 {
            let v: Value = self.api(Method::GET, &format!("/jobs/{job}")).send().await.unwrap().json().await.unwrap();
            let status = v["status"].as_str().unwrap().to_owned();
            if status == "completed" || status == "failed" {
                return (status, v["message"].as_str().unwrap().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job} did not finish");
    }

    /// Uploads and waits; panics unless the job completed.
    pub async fn import(&self, project: i64, files: &[(&str, Vec<u8>)]) -> String {
        let job = self.upload(project, files).await;
        let (status, message) = self.wait_job(&job).await;
        assert_eq!(status, "completed", "{message}");
        message
    }

    /// All findings of a project (sorted by id), as the API returns them.
    pub async fn findings(&self, project: i64, query: &str) -> Vec<Value> {
        let url = format!("/projects/{project}/findings?per_page=5000&{query}");
        let v: Value = self.api(Method::GET, &url).send().await.unwrap().json().await.unwrap();
        let mut list = v["findings"].as_array().unwrap().clone();
        assert_eq!(v["total"].as_u64().unwrap() as usize, list.len(), "more than one page");
        list.sort_by_key(|f| f["id"].as_i64());
        list
    }

    /// Sets triage through the page form, as a browser would.
    pub async fn triage(&self, finding: i64, status: &str, comment: &str) {
        let r = self
            .client
            .post(format!("{}/findings/{finding}", self.base))
            .header("X-Vrun-Proof", proof("alice"))
            .form(&[("status", status), ("comment", comment)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

/// A SARIF log with one run of `tool` and the given result objects.
pub fn sarif(tool: &str, results: &[String]) -> Vec<u8> {
    format!(
        r#"{{"version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"{tool}"}}}},"results":[{}]}}]}}"#,
        results.join(",")
    )
    .into_bytes()
}

/// One SARIF result object.
pub fn result(rule: &str, file: &str, line: u32, msg: &str) -> String {
    format!(
        r#"{{"ruleId":"{rule}","level":"warning","message":{{"text":"{msg}"}},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"{file}"}},"region":{{"startLine":{line}}}}}}}]}}"#
    )
}
