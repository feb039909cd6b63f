//! Source code on the pages: the lines around a location (finding page), and a whole
//! file with numbered, linkable lines (`{ctx}/projects/{id}/source?file=...&line=N`).
//! Sources come from the uploaded archive (see import/sources.rs); without one, the
//! finding page shows the tool's snippet instead.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::super::auth::User;
use super::super::error::PageError;
use super::super::html::{esc, page, qs};
use super::super::AppState;
use super::id_of;
use crate::db::projects;
use crate::import::sources;

/// Lines shown above and below a location.
const CONTEXT_LINES: usize = 4;

/// Numbered lines `from..=to` (1-based) of `content`, `hit` marked; None when the file
/// has no such line.
pub fn excerpt(content: &str, hit: i64, from: usize, to: usize) -> String {
    let mut s = String::from("<pre class=\"src\">");
    for (i, text) in content.lines().enumerate().skip(from.saturating_sub(1)).take(to + 1 - from.max(1)) {
        let n = i + 1;
        let class = if n as i64 == hit { " class=\"hit\"" } else { "" };
        let _ = writeln!(s, "<span id=\"L{n}\"{class}>{n:>5}  {}</span>", esc(text));
    }
    s.push_str("</pre>");
    s
}

/// The lines around `line` of `file`, with a link to the whole file, when the project
/// has that file's source.
pub fn around(ctx: &str, project_id: i64, file: &str, line: i64, content: &str) -> String {
    let l = line.max(1) as usize;
    let from = l.saturating_sub(CONTEXT_LINES).max(1);
    format!(
        "{}<a class=\"file-link\" href=\"{}\">whole file</a>",
        excerpt(content, line, from, l + CONTEXT_LINES),
        esc(&format!("{ctx}/projects/{project_id}/source?file={}&line={line}#L{line}", qs(file)))
    )
}

#[derive(Deserialize)]
pub struct SourceQuery {
    file: String,
    #[serde(default)]
    line: Option<String>,
}

pub async fn file(
    User(user): User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<SourceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, PageError> {
    let id = id_of(id, "project")?;
    let Query(q) = q.map_err(|_| PageError::BadRequest("which file? (?file=...)".into()))?;
    let line = q.line.as_deref().and_then(|l| l.parse().ok()).unwrap_or(0);
    let f = q.file.clone();
    let (project, src) = st
        .with_db(move |c| {
            let Some(p) = projects::get(c, id)? else { return Ok(None) };
            Ok(Some((p, sources::get(c, id, &f)?)))
        })
        .await?
        .ok_or(PageError::NotFound("project"))?;
    let (entry, content) = src.ok_or(PageError::NotFound("source file"))?;
    let ctx = &st.config.context;
    let lines = content.lines().count();
    let b = format!(
        "<nav><a href=\"{ctx}/\">All packages</a> › <a href=\"{ctx}/projects/{id}\">{}</a></nav>\
         <p>From the source archive: <code>{}</code></p>{}",
        esc(&project.name),
        esc(&entry),
        excerpt(&content, line, 1, lines.max(1))
    );
    Ok(Html(page(&q.file, Some(&user), Some(ctx), &b)))
}
