//! The viewer's Code Dx API, as SWAMP's pusher used it: find or create the project named
//! after the package, upload the results (and source) as one analysis, follow the job.
//!
//! A viewer that has just reported `ready` may still refuse connections for a moment, and
//! a VM's port forward may reset one: those failures (and 5xx) are transient and retried
//! with backoff until the deadline. Anything else (401, other 4xx, a failed import) is
//! permanent: retrying cannot fix it, so it ends the run with a message saying what to do.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use vrun_proto::methods::Availability;

use crate::input::Input;
use crate::progress::Progress;
use crate::Pacer;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long one look at the import job may wait for its end (vrun's viewer answers `?wait=`).
const JOB_WAIT: Duration = Duration::from_secs(5);

/// One failed call, classified.
#[derive(Debug)]
pub enum CallError {
    /// Worth retrying: the viewer is starting, busy or briefly unreachable.
    Transient(String),
    Unauthorized,
    Refused {
        status: StatusCode,
        message: String,
    },
    BadReply(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CodeDxError {
    #[error("agent-monitor reported an unusable viewer ({0}); ask an administrator to check the viewer job")]
    BadAvailability(String),
    #[error("viewer at {address} rejected the API key agent-monitor handed out (HTTP 401); the viewer no longer matches its record: ask an administrator to abort it (abortViewer), then View again")]
    Unauthorized { address: String },
    #[error("viewer refused to {what}: HTTP {status}: {message}")]
    Refused { what: &'static str, status: StatusCode, message: String },
    #[error("unexpected answer from the viewer to {what}: {detail}")]
    BadReply { what: &'static str, detail: String },
    #[error("viewer at {address} did not {what} before the time ran out; last problem: {last}; View again (or pass a longer --wait)")]
    TimedOut { address: String, what: &'static str, last: String },
    #[error(
        "viewer could not import the results: {0}; check the results file (the viewer accepts SARIF 2.1.0 and SCARF)"
    )]
    ImportFailed(String),
    #[error("project {0:?} keeps disappearing from the viewer while being created")]
    ProjectRace(String),
}

pub struct CodeDx {
    http: reqwest::Client,
    address: String,
    /// `http://<address>/<urluuid>`
    base: String,
    apikey: HeaderValue,
}

#[derive(Deserialize)]
struct Projects {
    projects: Vec<ProjectRow>,
}

#[derive(Deserialize)]
struct ProjectRow {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(rename = "jobId")]
    job_id: String,
}

#[derive(Deserialize)]
struct Job {
    status: String,
    #[serde(default)]
    message: String,
}

impl CodeDx {
    /// Checks what agent-monitor handed out before it goes into URLs and headers.
    pub fn new(avail: &Availability) -> Result<CodeDx, CodeDxError> {
        let bad = |what: &str| CodeDxError::BadAvailability(what.to_owned());
        let addr = avail.address.as_str();
        let host_port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b))
        });
        if !host_port_ok {
            return Err(bad(&format!("address {addr:?} is not host:port")));
        }
        if !vrun_proto::job::is_urluuid(&avail.urluuid) {
            return Err(bad(&format!("urluuid {:?} is not proxy-<uuid>", avail.urluuid)));
        }
        let mut apikey = HeaderValue::from_str(&avail.apikey)
            .ok()
            .filter(|_| !avail.apikey.is_empty())
            .ok_or_else(|| bad("empty or malformed API key"))?;
        // Keeps the key out of any debug output of requests.
        apikey.set_sensitive(true);
        // The address is a hypervisor-local forward: a proxy from the environment must not
        // get in between (nor see the key).
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| bad(&format!("cannot build an HTTP client: {e}")))?;
        Ok(CodeDx { http, address: addr.to_owned(), base: format!("http://{addr}/{}", avail.urluuid), apikey })
    }

    /// Where a user sees the findings of a project.
    pub fn project_url(&self, id: i64) -> String {
        format!("{}/projects/{id}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/{path}", self.base)).header("API-Key", self.apikey.clone())
    }

    pub async fn find_project(&self, name: &str) -> Result<Option<i64>, CallError> {
        let list: Projects = json(self.request(Method::GET, "projects").send().await).await?;
        Ok(list.projects.into_iter().find(|p| p.name == name).map(|p| p.id))
    }

    /// `None` when the name is taken (409): someone else created it first.
    pub async fn create_project(&self, name: &str) -> Result<Option<i64>, CallError> {
        let resp = self.request(Method::PUT, "projects").json(&serde_json::json!({ "name": name })).send().await;
        match json::<Created>(resp).await {
            Ok(c) => Ok(Some(c.id)),
            Err(CallError::Refused { status: StatusCode::CONFLICT, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn start_import(&self, project: i64, input: &Input) -> Result<String, CallError> {
        let part =
            |bytes: &[u8], name: &str| reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned());
        // One analysis: the results as file1…fileN, then the source archive.
        let mut form = reqwest::multipart::Form::new();
        for (i, r) in input.results.iter().enumerate() {
            form = form.part(format!("file{}", i + 1), part(&r.bytes, &r.name));
        }
        if let Some(src) = &input.source {
            form = form.part(format!("file{}", input.results.len() + 1), part(src, "source.zip"));
        }
        let resp = self.request(Method::POST, &format!("projects/{project}/analysis")).multipart(form).send().await;
        Ok(json::<Accepted>(resp).await?.job_id)
    }

    /// The import job; vrun's viewer answers when it is over (or after `JOB_WAIT`), a viewer
    /// that ignores `wait` at once (then the caller's pauses pace the polls).
    async fn job(&self, id: &str) -> Result<Job, CallError> {
        let path = format!("jobs/{id}?wait={}", JOB_WAIT.as_secs());
        json(self.request(Method::GET, &path).send().await).await
    }

    /// Retries `call` on transient failures with exponential backoff until `deadline`.
    async fn retry<T, F, Fut>(&self, what: &'static str, deadline: Instant, mut call: F) -> Result<T, CodeDxError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(left, call()).await {
                Ok(r) => r,
                Err(_) => Err(CallError::Transient("no answer".into())),
            };
            let last = match outcome {
                Ok(v) => return Ok(v),
                Err(CallError::Transient(last)) => last,
                Err(CallError::Unauthorized) => {
                    return Err(CodeDxError::Unauthorized { address: self.address.clone() })
                }
                Err(CallError::Refused { status, message }) => {
                    return Err(CodeDxError::Refused { what, status, message })
                }
                Err(CallError::BadReply(detail)) => return Err(CodeDxError::BadReply { what, detail }),
            };
            if Instant::now() + backoff > deadline {
                return Err(CodeDxError::TimedOut { address: self.address.clone(), what, last });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The package's project id, if the viewer has one (with retries).
    pub async fn retry_find(&self, name: &str, deadline: Instant) -> Result<Option<i64>, CodeDxError> {
        self.retry("list projects", deadline, || self.find_project(name)).await
    }

    /// Puts the results into the package's project and waits for the import; returns the
    /// project id.
    pub async fn upload(&self, input: &Input, deadline: Instant, progress: &Progress) -> Result<i64, CodeDxError> {
        progress.state("uploading results");
        let name = input.package.as_str();
        let mut project = None;
        // A 409 means a concurrent creator won: its project is then found by the next GET.
        for _ in 0..3 {
            if let Some(id) = self.retry_find(name, deadline).await? {
                project = Some(id);
                break;
            }
            if let Some(id) = self.retry("create the project", deadline, || self.create_project(name)).await? {
                project = Some(id);
                break;
            }
        }
        let project = project.ok_or_else(|| CodeDxError::ProjectRace(name.to_owned()))?;
        // Re-posting after a lost reply imports the same findings again, which the viewer
        // merges by fingerprint: harmless, so the POST is retried like the rest.
        let job = self.retry("accept the upload", deadline, || self.start_import(project, input)).await?;
        progress.state(&format!("importing (job {job})"));
        let mut pacer = Pacer::default();
        loop {
            let j = self.retry("report the import job", deadline, || self.job(&job)).await?;
            match j.status.as_str() {
                "completed" => {
                    progress.state("results imported");
                    return Ok(project);
                }
                "failed" => return Err(CodeDxError::ImportFailed(j.message)),
                _ => {}
            }
            let pause = pacer.pause();
            if Instant::now() + pause > deadline {
                return Err(CodeDxError::TimedOut {
                    address: self.address.clone(),
                    what: "finish the import",
                    last: format!("job {job} is still {}", j.status),
                });
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// Classifies a response and decodes its JSON body.
async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Result<reqwest::Response>) -> Result<T, CallError> {
    let resp = resp.map_err(|e| CallError::Transient(root_cause(&e)))?;
    let status = resp.status();
    if status.is_success() {
        // A body cut off mid-way is a dropped connection, not a wrong answer.
        let bytes = resp.bytes().await.map_err(|e| CallError::Transient(root_cause(&e)))?;
        return serde_json::from_slice(&bytes).map_err(|e| CallError::BadReply(e.to_string()));
    }
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status {
        StatusCode::UNAUTHORIZED => Err(CallError::Unauthorized),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            Err(CallError::Transient(format!("HTTP {s}: {message}")))
        }
        s => Err(CallError::Refused { status: s, message }),
    }
}

/// reqwest's own text stops at "error sending request"; the innermost cause ("connection
/// refused") is the one that explains a retry.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    crate::monitor::short_cause(&cur.to_string())
}
