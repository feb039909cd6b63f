//! One finding: what the tool said, every location with its snippet, the triage form and
//! the history of every triage change.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Html;

use super::super::auth::User;
use super::super::error::PageError;
use super::super::html::{esc, message_html, page, time_html};
use super::super::markdown::markdown_html;
use super::super::AppState;
use super::source::around;
use super::{id_of, location};
use crate::db::findings::{self, status_label, Location, TRIAGE_STATUSES};

/// The code at a location: the archive's lines around it, else the tool's snippet.
fn code(ctx: &str, project_id: i64, l: &Location, sources: &HashMap<String, String>) -> String {
    match sources.get(&l.file) {
        Some(content) if l.line > 0 => around(ctx, project_id, &l.file, l.line, content),
        _ if !l.snippet.is_empty() => format!("<pre class=\"src snippet\">{}</pre>", esc(&l.snippet)),
        _ => String::new(),
    }
}

pub async fn finding(
    User(user): User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let id = id_of(id, "finding")?;
    let (d, history, flows, sources) = st
        .with_db(move |c| {
            let Some(d) = findings::detail(c, id)? else { return Ok(None) };
            let flows = findings::flows(c, id)?;
            // The stored source of every file a location or flow step names.
            let mut files: Vec<&str> = d.locations.iter().map(|l| l.file.as_str()).collect();
            files.extend(flows.iter().flat_map(|(_, s)| s.iter().map(|l| l.file.as_str())));
            files.sort_unstable();
            files.dedup();
            let mut sources = HashMap::new();
            for f in files {
                if let Some((_, content)) = crate::import::sources::get(c, d.project_id, f)? {
                    sources.insert(f.to_owned(), content);
                }
            }
            Ok(Some((d.clone(), findings::history(c, id)?, flows, sources)))
        })
        .await?
        .ok_or(PageError::NotFound("finding"))?;
    let ctx = &st.config.context;
    let r = &d.row;
    let mut b = format!(
        "<nav><a href=\"{ctx}/\">All packages</a> › <a href=\"{ctx}/projects/{}\">{}</a></nav>",
        d.project_id,
        esc(&d.project_name)
    );
    let cwe = r
        .cwe
        .iter()
        .map(|c| format!("<a href=\"{ctx}/projects/{}?cwe={c}\">CWE-{c}</a>", d.project_id))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        b,
        "<table class=\"box\" id=\"summary\"><caption>Finding</caption>\
         <tr><th scope=\"row\">Severity</th><td class=\"sev {sev}\">{sev}</td></tr>\
         <tr><th scope=\"row\">Tool</th><td>{}</td></tr><tr><th scope=\"row\">Rule</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Category</th><td>{}</td></tr><tr><th scope=\"row\">CWE</th><td id=\"cwe\">{cwe}</td></tr>\
         <tr><th scope=\"row\">Location</th><td id=\"location\" class=\"loc\">{}</td></tr>\
         <tr><th scope=\"row\">In latest results</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Fingerprint</th><td><code>{}</code></td></tr></table>\
         <h2>Message</h2>{}",
        esc(&r.tool),
        esc(&r.rule),
        esc(&d.category),
        location(&r.file, r.line),
        if r.present { "yes" } else { "no" },
        r.fingerprint,
        if d.markdown.is_empty() {
            format!("<pre id=\"message\">{}</pre>", message_html(&r.message, true))
        } else {
            format!("<div id=\"message\" class=\"markdown\">{}</div>", markdown_html(&d.markdown))
        },
        sev = r.severity.name(),
    );
    if !d.locations.is_empty() {
        b.push_str(
            "<table id=\"locations\"><caption>Locations</caption><tr><th scope=\"col\">#</th>\
             <th scope=\"col\">Location</th><th scope=\"col\">Message</th><th scope=\"col\">Snippet</th></tr>",
        );
        for (i, l) in d.locations.iter().enumerate() {
            let _ = write!(
                b,
                "<tr id=\"loc-{n}\"><td>{n}</td><td class=\"loc\">{}</td><td class=\"msg\">{}</td><td>{}</td></tr>",
                location(&l.file, l.line),
                esc(&l.message),
                code(ctx, d.project_id, l, &sources),
                n = i + 1,
            );
        }
        b.push_str("</table>");
    }
    for (n, steps) in &flows {
        let _ = write!(b, "<section class=\"flow\" id=\"flow-{n}\"><h2>Code flow {n}</h2><ol class=\"flow\">");
        for l in steps {
            let _ = write!(
                b,
                "<li><span class=\"loc\">{}</span> {}{}</li>",
                location(&l.file, l.line),
                esc(&l.message),
                code(ctx, d.project_id, l, &sources)
            );
        }
        b.push_str("</ol></section>");
    }

    let mut options = String::new();
    for s in TRIAGE_STATUSES {
        let sel = if s == r.status { " selected" } else { "" };
        let _ = write!(options, "<option value=\"{s}\"{sel}>{}</option>", status_label(s));
    }
    let last = match (&d.triage_user, d.triage_time) {
        (Some(u), Some(t)) => format!("<p id=\"last-triage\">Last triaged by {} on {}.</p>", esc(u), time_html(t)),
        _ => String::new(),
    };
    let _ = write!(
        b,
        "<h2>Triage</h2><form class=\"box\" id=\"triage\" method=\"post\" action=\"{ctx}/findings/{id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label>Status <select name=\"status\" id=\"status\">{options}</select></label></p>\
         <p><label>Reason<br><textarea name=\"comment\" id=\"comment\" rows=\"4\" cols=\"60\">{}</textarea></label></p>\
         <p><button type=\"submit\" id=\"save\">Save</button></p></form>{last}",
        st.csrf.token(&user),
        esc(&d.comment)
    );
    if !history.is_empty() {
        b.push_str(
            "<table id=\"history\"><caption>Triage history</caption><tr><th scope=\"col\">When</th>\
             <th scope=\"col\">Who</th><th scope=\"col\">Status</th><th scope=\"col\">Reason</th></tr>",
        );
        for h in history.iter().rev() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                time_html(h.time),
                esc(&h.user),
                esc(&status_label(&h.status)),
                esc(&h.comment)
            );
        }
        b.push_str("</table>");
    }
    Ok(Html(page(&format!("Finding {id}"), Some(&user), Some(ctx), &b)))
}
