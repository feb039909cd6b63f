//! Exports of a filtered findings list: CSV, and SARIF 2.1.0 with triage carried as
//! `suppressions` (§3.35) and the change since the previous analysis as `baselineState`
//! (§3.27.24), so GitHub code scanning and other SARIF consumers can take it.
//!
//! Both are streamed: a blocking task walks the rows and sends chunks through a bounded
//! channel, so a 50,000-finding export holds a few chunks in memory, not the file, and
//! stops when the client goes away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::User;
use super::error::PageError;
use super::query::ListQuery;
use super::AppState;
use crate::db::findings::Severity;
use crate::db::listing::{self, Change, ExportRow, Sort};
use crate::db::projects;

/// Statuses that mean "not a problem to act on": exported as accepted suppressions.
const SUPPRESSED: [&str; 4] = ["false_positive", "ignored", "mitigated", "fixed"];

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

/// A response body fed by a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Sarif,
}

/// A CSV field: quoted, quotes doubled; a leading `= + - @` gets a `'` so spreadsheets
/// do not run tool text as a formula.
fn csv(s: &str) -> String {
    let guard = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { "'" } else { "" };
    format!("\"{guard}{}\"", s.replace('"', "\"\""))
}

fn csv_row(e: &ExportRow) -> String {
    let r = &e.row;
    let fields = [
        r.id.to_string(),
        r.severity.name().to_owned(),
        r.tool.clone(),
        r.rule.clone(),
        r.cwe.iter().map(|c| format!("CWE-{c}")).collect::<Vec<_>>().join(" "),
        r.file.clone(),
        r.line.to_string(),
        r.message.clone(),
        r.status.clone(),
        e.comment.clone(),
        e.triage_user.clone().unwrap_or_default(),
        e.change.name().to_owned(),
        r.fingerprint.clone(),
    ];
    let mut line = fields.iter().map(|f| csv(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

const CSV_HEADER: &str =
    "id,severity,tool,rule,cwe,file,line,message,status,reason,triaged_by,since_previous_analysis,fingerprint\r\n";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
        Severity::Info => "none",
    }
}

fn sarif_result(e: &ExportRow) -> serde_json::Value {
    let r = &e.row;
    let mut region = serde_json::Map::new();
    if r.line > 0 {
        region.insert("startLine".into(), r.line.into());
    }
    let mut res = json!({
        "ruleId": r.rule,
        "level": level(r.severity),
        "message": { "text": r.message },
        "partialFingerprints": { "vrunViewerFingerprint/v1": r.fingerprint },
        "baselineState": match e.change { Change::New => "new", Change::Present => "unchanged", Change::Gone => "absent" },
        "properties": {
            "severity": r.severity.name(),
            "triageStatus": r.status,
            "tags": r.cwe.iter().map(|c| format!("external/cwe/cwe-{c}")).collect::<Vec<_>>(),
        },
    });
    if !r.file.is_empty() {
        let mut loc = json!({ "physicalLocation": { "artifactLocation": { "uri": r.file } } });
        if !region.is_empty() {
            loc["physicalLocation"]["region"] = region.into();
        }
        res["locations"] = json!([loc]);
    }
    if SUPPRESSED.contains(&r.status.as_str()) {
        let why = if e.comment.is_empty() {
            r.status.replace('_', " ")
        } else {
            format!("{}: {}", r.status.replace('_', " "), e.comment)
        };
        res["suppressions"] = json!([{ "kind": "external", "status": "accepted", "justification": why }]);
    }
    res
}

async fn export(
    st: Arc<AppState>,
    id: Result<Path<i64>, PathRejection>,
    q: ListQuery,
    format: Format,
) -> Result<Response, PageError> {
    let id = super::pages::id_of(id, "project")?;
    let project = st.with_db(move |c| projects::get(c, id)).await?.ok_or(PageError::NotFound("project"))?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let db = st.db.clone();
    let filter = q.filter();
    let (_, dir) = q.sort();
    // SARIF groups results into one run per tool, so it walks in tool order.
    let sort = match format {
        Format::Sarif => Sort::Tool,
        Format::Csv => q.sort().0,
    };
    tokio::task::spawn_blocking(move || {
        let mut buf = String::new();
        let mut open = true;
        let mut flush = |buf: &mut String, force: bool| {
            if open && (force || buf.len() >= CHUNK) {
                open = tx.blocking_send(Bytes::from(std::mem::take(buf))).is_ok();
            }
            open
        };
        let mut tool: Option<String> = None;
        let mut first_in_run = true;
        match format {
            Format::Csv => buf.push_str(CSV_HEADER),
            Format::Sarif => buf.push_str(
                "{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\",\"runs\":[",
            ),
        }
        let walked = db.connect().and_then(|c| {
            listing::each(&c, id, &filter, sort, dir, |e| {
                match format {
                    Format::Csv => buf.push_str(&csv_row(&e)),
                    Format::Sarif => {
                        if tool.as_deref() != Some(e.row.tool.as_str()) {
                            if tool.is_some() {
                                buf.push_str("]},");
                            }
                            let driver = json!({ "tool": { "driver": { "name": e.row.tool } } });
                            let head = driver.to_string();
                            buf.push_str(&head[..head.len() - 1]);
                            buf.push_str(",\"results\":[");
                            tool = Some(e.row.tool.clone());
                            first_in_run = true;
                        }
                        if !first_in_run {
                            buf.push(',');
                        }
                        first_in_run = false;
                        buf.push_str(&sarif_result(&e).to_string());
                    }
                }
                flush(&mut buf, false)
            })
        });
        if let Err(e) = walked {
            // The body is already under way: the client sees a cut file, the log says why.
            tracing::error!(project = id, "export failed: {e}");
            return;
        }
        if let Format::Sarif = format {
            if tool.is_some() {
                buf.push_str("]}");
            }
            buf.push_str("]}");
        }
        flush(&mut buf, true);
    });
    let name: String =
        project.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Sarif => ("application/sarif+json", "sarif"),
    };
    Ok((
        [("content-type", ctype.to_owned()), ("content-disposition", format!("attachment; filename=\"{name}.{ext}\""))],
        Body::new(ChannelBody(rx)),
    )
        .into_response())
}

/// `GET {ctx}/projects/{id}/export.csv?<filters>`
pub async fn csv_export(
    _: User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    export(st, id, q, Format::Csv).await
}

/// `GET {ctx}/projects/{id}/export.sarif?<filters>`
pub async fn sarif_export(
    _: User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    export(st, id, q, Format::Sarif).await
}
