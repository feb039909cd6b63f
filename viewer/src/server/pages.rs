//! Server-rendered pages: projects, a project's findings table, a finding with its triage
//! form. No scripts; filters and sorting are plain GET query parameters, triage is a
//! POST that redirects back (so reload does not resubmit).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, Redirect};
use serde::Deserialize;

use super::auth::User;
use super::error::PageError;
use super::html::{esc, message_html, page, qs};
use super::query::ListQuery;
use super::AppState;
use crate::db::findings::{self, Direction, Severity, Sort, TRIAGE_STATUSES};
use crate::db::projects;

/// Rows per page of the findings table.
pub const PAGE_SIZE: i64 = 200;

fn id_of(p: Result<Path<i64>, PathRejection>, what: &'static str) -> Result<i64, PageError> {
    p.map(|Path(id)| id).map_err(|_| PageError::NotFound(what))
}

/// `file:line`, escaped; tools may report no file (line 0 means "no line").
fn location(file: &str, line: i64) -> String {
    match (file.is_empty(), line) {
        (true, _) => "(no location)".to_string(),
        (false, 0) => esc(file),
        (false, l) => format!("{}:{l}", esc(file)),
    }
}

pub async fn index(User(user): User, State(st): State<Arc<AppState>>) -> Result<Html<String>, PageError> {
    let list = st.with_db(|c| projects::summaries(c)).await?;
    let ctx = &st.config.context;
    let mut body = String::from("<table><tr><th>Package</th><th>Findings</th></tr>");
    for p in &list {
        let _ = write!(
            body,
            "<tr><td><a href=\"{ctx}/projects/{}\">{}</a></td><td>{}</td></tr>",
            p.id,
            esc(&p.name),
            p.findings
        );
    }
    body.push_str("</table>");
    if list.is_empty() {
        body.push_str("<p>No results have been uploaded yet.</p>");
    }
    Ok(Html(page(&format!("{} – results", st.config.project), Some(&user), &body)))
}

/// Query string for the findings table with some fields replaced.
fn table_link(ctx: &str, id: i64, q: &ListQuery, sort: Sort, dir: Direction, page_no: i64) -> String {
    let mut s = format!("{ctx}/projects/{id}?sort={}&dir={}", sort.name(), dir.name());
    for (k, v) in [("severity", &q.severity), ("tool", &q.tool), ("status", &q.status), ("q", &q.q)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(s, "&{k}={}", qs(v));
        }
    }
    if page_no > 1 {
        let _ = write!(s, "&page={page_no}");
    }
    esc(&s)
}

fn select(name: &str, label: &str, options: &[&str], current: Option<&str>) -> String {
    let mut s = format!("<label>{label} <select name=\"{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if Some(*o) == current { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{0}\"{sel}>{0}</option>", esc(o));
    }
    s.push_str("</select></label>");
    s
}

pub async fn project(
    User(user): User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let id = id_of(id, "project")?;
    let (filter, (sort, dir), page_no) = (q.filter(), q.sort(), q.page());
    let f2 = filter.clone();
    let (project, tools, rows, total) = st
        .with_db(move |c| {
            let Some(p) = projects::get(c, id)? else { return Ok(None) };
            let tools = findings::tools(c, id)?;
            let (rows, total) = findings::list(c, id, &f2, sort, dir, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)?;
            Ok(Some((p, tools, rows, total)))
        })
        .await?
        .ok_or(PageError::NotFound("project"))?;
    let ctx = &st.config.context;

    let mut b = format!("<nav><a href=\"{ctx}/\">All packages</a></nav>");
    let sev_names: Vec<&str> = Severity::ALL.iter().map(|s| s.name()).collect();
    let tool_names: Vec<&str> = tools.iter().map(String::as_str).collect();
    let _ = write!(
        b,
        "<form class=\"filters\" method=\"get\">{}{}{}<label>Text <input name=\"q\" value=\"{}\"></label>\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\
         <button type=\"submit\">Filter</button> <a href=\"{ctx}/projects/{id}\">reset</a></form>",
        select("severity", "Severity", &sev_names, filter.severity.map(|s| s.name())),
        select("tool", "Tool", &tool_names, filter.tool.as_deref()),
        select("status", "Status", &TRIAGE_STATUSES, filter.status.as_deref()),
        esc(filter.text.as_deref().unwrap_or("")),
        sort.name(),
        dir.name(),
    );
    let first = if total == 0 { 0 } else { (page_no - 1) * PAGE_SIZE + 1 };
    let last = ((page_no - 1) * PAGE_SIZE + rows.len() as i64).max(first);
    let _ = write!(b, "<p id=\"count\">{first}–{last} of {total} findings</p><table id=\"findings\"><tr>");
    for (col, label) in [
        (Some(Sort::Severity), "Severity"),
        (Some(Sort::Tool), "Tool"),
        (Some(Sort::Rule), "Rule"),
        (Some(Sort::File), "Location"),
        (None, "Message"),
        (Some(Sort::Status), "Status"),
    ] {
        match col {
            Some(c) => {
                let next = if c == sort { dir.reversed() } else { Direction::Asc };
                let arrow = match (c == sort, dir) {
                    (false, _) => "",
                    (true, Direction::Desc) => " ▼",
                    (true, Direction::Asc) => " ▲",
                };
                let _ = write!(b, "<th><a href=\"{}\">{label}{arrow}</a></th>", table_link(ctx, id, &q, c, next, 1));
            }
            None => {
                let _ = write!(b, "<th>{label}</th>");
            }
        }
    }
    b.push_str("</tr>");
    for r in &rows {
        let gone = if r.present { "" } else { " class=\"gone\" title=\"not in the latest results of this tool\"" };
        let _ = write!(
            b,
            "<tr{gone}><td class=\"sev {sev}\">{sev}</td><td>{tool}</td><td>{rule}</td><td>{loc}</td>\
             <td class=\"msg\"><a href=\"{ctx}/findings/{fid}\">{msg}</a></td><td class=\"status\">{status}</td></tr>",
            sev = r.severity.name(),
            tool = esc(&r.tool),
            rule = esc(&r.rule),
            loc = location(&r.file, r.line),
            fid = r.id,
            msg = if r.message.is_empty() { "(no message)".to_string() } else { message_html(&r.message, false) },
            status = esc(&r.status),
        );
    }
    b.push_str("</table><p>");
    if page_no > 1 {
        let _ = write!(b, "<a href=\"{}\">« previous</a> ", table_link(ctx, id, &q, sort, dir, page_no - 1));
    }
    if page_no * PAGE_SIZE < total {
        let _ = write!(b, "<a href=\"{}\">next »</a>", table_link(ctx, id, &q, sort, dir, page_no + 1));
    }
    b.push_str("</p>");
    Ok(Html(page(&format!("{} – {}", st.config.project, project.name), Some(&user), &b)))
}

pub async fn finding(
    User(user): User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let id = id_of(id, "finding")?;
    let d = st.with_db(move |c| findings::detail(c, id)).await?.ok_or(PageError::NotFound("finding"))?;
    let ctx = &st.config.context;
    let r = &d.row;
    let mut b = format!(
        "<nav><a href=\"{ctx}/\">All packages</a> › <a href=\"{ctx}/projects/{}\">{}</a></nav>",
        d.project_id,
        esc(&d.project_name)
    );
    let _ = write!(
        b,
        "<table class=\"box\"><tr><th>Severity</th><td class=\"sev {sev}\">{sev}</td></tr>\
         <tr><th>Tool</th><td>{}</td></tr><tr><th>Rule</th><td>{}</td></tr><tr><th>Category</th><td>{}</td></tr>\
         <tr><th>Location</th><td id=\"location\">{}</td></tr><tr><th>In latest results</th><td>{}</td></tr>\
         <tr><th>Fingerprint</th><td><code>{}</code></td></tr></table><h2>Message</h2><pre id=\"message\">{}</pre>",
        esc(&r.tool),
        esc(&r.rule),
        esc(&d.category),
        location(&r.file, r.line),
        if r.present { "yes" } else { "no" },
        r.fingerprint,
        message_html(&r.message, true),
        sev = r.severity.name(),
    );
    if !d.locations.is_empty() {
        b.push_str("<h2>Locations</h2><table><tr><th>#</th><th>Location</th><th>Message</th></tr>");
        for (i, l) in d.locations.iter().enumerate() {
            let _ = write!(
                b,
                "<tr id=\"loc-{n}\"><td>{n}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                location(&l.file, l.line),
                esc(&l.message),
                n = i + 1,
            );
        }
        b.push_str("</table>");
    }
    let mut options = String::new();
    for s in TRIAGE_STATUSES {
        let sel = if s == r.status { " selected" } else { "" };
        let _ = write!(options, "<option value=\"{s}\"{sel}>{}</option>", s.replace('_', " "));
    }
    let last = match (&d.triage_user, d.triage_time) {
        (Some(u), Some(t)) => format!("<p>Last triaged by {} (unix time {t}).</p>", esc(u)),
        _ => String::new(),
    };
    let _ = write!(
        b,
        "<h2>Triage</h2><form class=\"box\" id=\"triage\" method=\"post\" action=\"{ctx}/findings/{id}\">\
         <p><label>Status <select name=\"status\" id=\"status\">{options}</select></label></p>\
         <p><label>Comment<br><textarea name=\"comment\" id=\"comment\" rows=\"4\" cols=\"60\">{}</textarea></label></p>\
         <p><button type=\"submit\" id=\"save\">Save</button></p></form>{last}",
        esc(&d.comment)
    );
    Ok(Html(page(&format!("Finding {id}"), Some(&user), &b)))
}

#[derive(Deserialize)]
pub struct TriageForm {
    status: String,
    #[serde(default)]
    comment: String,
}

pub async fn triage(
    User(user): User,
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<TriageForm>, axum::extract::rejection::FormRejection>,
) -> Result<Redirect, PageError> {
    // The front end adds the user header to every request it proxies, so a form on
    // another site could post here with the user's identity; browsers label such
    // requests and we refuse them.
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(PageError::Forbidden("Cross-site form submissions are not accepted.".into()));
    }
    let id = id_of(id, "finding")?;
    let Form(form) = form.map_err(|e| PageError::BadRequest(format!("bad form: {e}")))?;
    if !TRIAGE_STATUSES.contains(&form.status.as_str()) {
        return Err(PageError::BadRequest(format!("unknown status {:?}", form.status)));
    }
    let comment = crate::import::clip(form.comment.trim().to_owned(), st.config.limits.max_field_bytes);
    let found = st.with_db(move |c| findings::triage(c, id, &form.status, &comment, &user)).await?;
    if !found {
        return Err(PageError::NotFound("finding"));
    }
    Ok(Redirect::to(&format!("{}/findings/{id}", st.config.context)))
}
