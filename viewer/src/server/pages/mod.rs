//! Server-rendered pages: packages, a package's findings (filters, facets, pages, bulk
//! triage, exports), a finding (source, flows, triage and its history). Filters and
//! sorting are plain GET query parameters; triage is a POST carrying a CSRF token that
//! redirects back (so reload does not resubmit). The only script shows times in local time.

mod finding;
mod links;
mod list;
mod source;
mod triage;

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;

pub use finding::finding;
pub use list::project;
pub use source::file as source_file;
pub use triage::{bulk_triage, triage};

use super::auth::User;
use super::error::PageError;
use super::html::{esc, page, qs};
use super::AppState;
use crate::db::findings::Severity;
use crate::db::listing::{self, Filter};
use crate::db::projects;

pub(super) fn id_of(p: Result<Path<i64>, PathRejection>, what: &'static str) -> Result<i64, PageError> {
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

/// The packages, each with its counts per severity, tool, status and its top rules;
/// every count links to the findings it counts.
pub async fn index(User(user): User, State(st): State<Arc<AppState>>) -> Result<Html<String>, PageError> {
    type Counts = Vec<(String, i64)>;
    let list = st
        .with_db(|c| {
            let mut out = Vec::new();
            for p in projects::summaries(c)? {
                let f = Filter::default();
                let sev: Counts = listing::facet(c, p.id, &f, "severity", 5)?;
                let tools: Counts = listing::facet(c, p.id, &f, "tool", 20)?;
                let status: Counts = listing::facet(c, p.id, &f, "triage_status", 10)?;
                let rules: Counts = listing::facet(c, p.id, &f, "rule", 3)?;
                out.push((p, sev, tools, status, rules));
            }
            Ok(out)
        })
        .await?;
    let ctx = &st.config.context;
    let mut body = String::from(
        "<table id=\"packages\"><caption>Packages</caption><tr><th scope=\"col\">Package</th>\
         <th scope=\"col\">Findings</th>",
    );
    for s in Severity::ALL {
        let _ = write!(body, "<th scope=\"col\">{}</th>", s.name());
    }
    body.push_str("<th scope=\"col\">Tools</th><th scope=\"col\">Status</th><th scope=\"col\">Top rules</th></tr>");
    for (p, sev, tools, status, rules) in &list {
        let base = format!("{ctx}/projects/{}", p.id);
        let _ = write!(body, "<tr><td><a href=\"{base}\">{}</a></td><td>{}</td>", esc(&p.name), p.findings);
        for s in Severity::ALL {
            let n = sev.iter().find(|(v, _)| *v == (s as i64).to_string()).map_or(0, |x| x.1);
            let _ = write!(body, "<td class=\"sev {0}\"><a href=\"{base}?severity={0}\">{n}</a></td>", s.name());
        }
        let links = |field: &str, counts: &Counts| {
            counts
                .iter()
                .map(|(v, n)| format!("<a href=\"{}\">{} ({n})</a>", esc(&format!("{base}?{field}={}", qs(v))), esc(v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            body,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            links("tool", tools),
            links("status", status),
            links("rule", rules)
        );
    }
    body.push_str("</table>");
    if list.is_empty() {
        body.push_str("<p>No results have been uploaded yet.</p>");
    }
    Ok(Html(page(&format!("{} – results", st.config.project), Some(&user), Some(ctx), &body)))
}
