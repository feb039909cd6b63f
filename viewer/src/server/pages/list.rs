//! A package's findings: active filters, facets, the filter form, one keyset page of the
//! table, paging with a jump, bulk triage of the selection, and export links.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::super::auth::User;
use super::super::error::PageError;
use super::super::html::{esc, message_html, page, short};
use super::super::query::{ListQuery, FILTER_FIELDS};
use super::super::AppState;
use super::links::{hidden_filters, table_link};
use super::{id_of, location};
use crate::db::findings::{status_label, Severity, TRIAGE_STATUSES};
use crate::db::listing::{self, Change, Direction, Sort};
use crate::db::projects;

/// Rows per page of the findings table.
pub const PAGE_SIZE: i64 = 200;

/// Characters of a message shown in the table; the finding page shows all of it.
const LIST_MESSAGE_CHARS: usize = 300;

fn select(name: &str, label: &str, options: &[(&str, String)], current: Option<&str>) -> String {
    let mut s = format!("<label>{label} <select name=\"{name}\"><option value=\"\">any</option>");
    let mut found = false;
    for (value, text) in options {
        let sel = if Some(*value) == current { " selected" } else { "" };
        found |= !sel.is_empty();
        let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", esc(value), esc(text));
    }
    // A value the menu does not offer (an edited URL) is still shown, not "any".
    if let (Some(c), false) = (current, found) {
        let _ = write!(s, "<option value=\"{0}\" selected>{0}</option>", esc(c));
    }
    s.push_str("</select></label>");
    s
}

fn text_input(name: &str, label: &str, current: Option<&str>, size: u32) -> String {
    format!("<label>{label} <input name=\"{name}\" size=\"{size}\" value=\"{}\"></label>", esc(current.unwrap_or("")))
}

struct Facets {
    severity: Vec<(String, i64)>,
    tool: Vec<(String, i64)>,
    rule: Vec<(String, i64)>,
    status: Vec<(String, i64)>,
    change: Vec<(Change, i64)>,
}

pub async fn project(
    User(user): User,
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, PageError> {
    let id = id_of(id, "project")?;
    let (filter, (sort, dir), start) = (q.filter(), q.sort(), q.start());
    let f2 = filter.clone();
    let (project, tools, facets, pg) = st
        .with_db(move |c| {
            let Some(p) = projects::get(c, id)? else { return Ok(None) };
            let tools = listing::facet(c, id, &Default::default(), "tool", 1000)?;
            let facets = Facets {
                severity: listing::facet(c, id, &f2, "severity", 5)?,
                tool: listing::facet(c, id, &f2, "tool", 20)?,
                rule: listing::facet(c, id, &f2, "rule", 15)?,
                status: listing::facet(c, id, &f2, "triage_status", 10)?,
                change: listing::change_counts(c, id, &f2)?,
            };
            let pg = listing::page(c, id, &f2, sort, dir, &start, PAGE_SIZE)?;
            Ok(Some((p, tools, facets, pg)))
        })
        .await?
        .ok_or(PageError::NotFound("project"))?;
    let ctx = &st.config.context;
    let link = |changes: &[(&str, Option<&str>)]| table_link(ctx, id, &q, changes);

    let mut b = format!("<nav><a href=\"{ctx}/\">All packages</a></nav>");

    // Every active filter, each removable, including values that match nothing.
    let active: Vec<(&str, &str, String)> =
        FILTER_FIELDS.iter().filter_map(|(n, label)| Some((*n, *label, q.field(n)?))).collect();
    if !active.is_empty() {
        b.push_str("<div class=\"active\" id=\"active-filters\">Filters: ");
        for (n, label, v) in &active {
            let _ = write!(
                b,
                "<span class=\"filter\">{label} = <strong>{}</strong> <a href=\"{}\" aria-label=\"remove filter {label}\">✕</a></span> ",
                esc(v),
                link(&[(n, None)])
            );
        }
        let _ = write!(b, "<a href=\"{ctx}/projects/{id}\">clear all</a></div>");
    }

    // The filter form.
    let sev: Vec<(&str, String)> = Severity::ALL.iter().map(|s| (s.name(), s.name().to_owned())).collect();
    let tool_opts: Vec<(&str, String)> = tools.iter().map(|(t, _)| (t.as_str(), t.clone())).collect();
    let status_opts: Vec<(&str, String)> = TRIAGE_STATUSES.iter().map(|s| (*s, status_label(s))).collect();
    let change_opts: Vec<(&str, String)> = Change::ALL.iter().map(|c| (c.name(), c.name().to_owned())).collect();
    let _ = write!(
        b,
        "<form class=\"filters\" method=\"get\" action=\"{ctx}/projects/{id}\">{}{}{}{}{}{}{}{}\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\
         <button type=\"submit\">Filter</button> <a href=\"{ctx}/projects/{id}\">reset</a></form>",
        select("severity", "Severity", &sev, q.field("severity").as_deref()),
        select("tool", "Tool", &tool_opts, q.field("tool").as_deref()),
        select("status", "Status", &status_opts, q.field("status").as_deref()),
        select("change", "Since the previous analysis", &change_opts, q.field("change").as_deref()),
        text_input("rule", "Rule", q.field("rule").as_deref(), 12),
        text_input("cwe", "CWE", q.field("cwe").as_deref(), 5),
        text_input("path", "Path starts with", q.field("path").as_deref(), 16),
        text_input("q", "Text", q.field("q").as_deref(), 16),
        sort.name(),
        dir.name(),
    );

    // Facets: counts of the current selection, each a link that narrows it.
    b.push_str("<div class=\"facets\" id=\"facets\">");
    let mut facet = |title: &str, field: &str, items: Vec<(String, String, i64)>| {
        let _ = write!(b, "<section><h2>{title}</h2><ul>");
        for (value, label, n) in items {
            let _ = write!(b, "<li><a href=\"{}\">{} ({n})</a></li>", link(&[(field, Some(&value))]), esc(&label));
        }
        b.push_str("</ul></section>");
    };
    let sev_items = facets
        .severity
        .iter()
        .map(|(r, n)| {
            let s = Severity::from_rank(r.parse().unwrap_or(3)).name().to_owned();
            (s.clone(), s, *n)
        })
        .collect();
    facet("Severity", "severity", sev_items);
    facet("Tool", "tool", facets.tool.iter().map(|(v, n)| (v.clone(), v.clone(), *n)).collect());
    facet("Rule", "rule", facets.rule.iter().map(|(v, n)| (v.clone(), v.clone(), *n)).collect());
    facet("Status", "status", facets.status.iter().map(|(v, n)| (v.clone(), status_label(v), *n)).collect());
    facet(
        "Since the previous analysis",
        "change",
        facets.change.iter().map(|(c, n)| (c.name().to_owned(), c.name().to_owned(), *n)).collect(),
    );
    b.push_str("</div>");

    let first = if pg.total == 0 { 0 } else { (pg.number - 1) * PAGE_SIZE + 1 };
    let last = if pg.total == 0 { 0 } else { first + pg.rows.len() as i64 - 1 };
    let _ = write!(
        b,
        "<p id=\"count\">{first}–{last} of {} findings · page {} of {}</p>\
         <table id=\"findings\"><caption>Findings</caption><tr>",
        pg.total, pg.number, pg.pages
    );
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
                let (arrow, aria) = match (c == sort, dir) {
                    (false, _) => ("", String::new()),
                    (true, Direction::Desc) => (" ▼", " aria-sort=\"descending\"".to_owned()),
                    (true, Direction::Asc) => (" ▲", " aria-sort=\"ascending\"".to_owned()),
                };
                let href = link(&[("sort", Some(c.name())), ("dir", Some(next.name()))]);
                let _ = write!(b, "<th scope=\"col\"{aria}><a href=\"{href}\">{label}{arrow}</a></th>");
            }
            None => {
                let _ = write!(b, "<th scope=\"col\">{label}</th>");
            }
        }
    }
    b.push_str("</tr>");
    for r in &pg.rows {
        let gone = if r.present { "" } else { " class=\"gone\" title=\"not in the latest results of this tool\"" };
        let msg = if r.message.is_empty() {
            "(no message)".to_string()
        } else {
            message_html(&short(&r.message, LIST_MESSAGE_CHARS), false)
        };
        let _ = write!(
            b,
            "<tr{gone}><td class=\"sev {sev}\">{sev}</td><td>{tool}</td><td>{rule}</td><td class=\"loc\">{loc}</td>\
             <td class=\"msg\"><a href=\"{ctx}/findings/{fid}\">{msg}</a></td><td class=\"status\">{status}</td></tr>",
            sev = r.severity.name(),
            tool = esc(&r.tool),
            rule = esc(&r.rule),
            loc = location(&r.file, r.line),
            fid = r.id,
            status = esc(&r.status),
        );
    }
    b.push_str("</table><nav class=\"pages\" aria-label=\"pages\"><p>");
    if pg.number > 1 {
        let _ = write!(b, "<a href=\"{}\">« first</a> ", link(&[]));
    }
    if let Some(c) = &pg.prev {
        let _ = write!(b, "<a rel=\"prev\" href=\"{}\">‹ previous</a> ", link(&[("before", Some(c))]));
    }
    if let Some(c) = &pg.next {
        let _ = write!(b, "<a rel=\"next\" href=\"{}\">next ›</a> ", link(&[("after", Some(c))]));
    }
    if pg.number < pg.pages {
        let _ = write!(b, "<a href=\"{}\">last »</a>", link(&[("page", Some(&pg.pages.to_string()))]));
    }
    let _ = write!(
        b,
        "</p><form method=\"get\" action=\"{ctx}/projects/{id}\" id=\"jump\">{}\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\
         <label>Go to page <input name=\"page\" type=\"number\" min=\"1\" max=\"{}\" value=\"{}\"></label> \
         <button type=\"submit\">Go</button></form></nav>",
        hidden_filters(&q),
        sort.name(),
        dir.name(),
        pg.pages,
        pg.number
    );

    // Bulk triage of the whole selection, and exports of it.
    let status_options: String =
        TRIAGE_STATUSES.iter().map(|s| format!("<option value=\"{s}\">{}</option>", status_label(s))).collect();
    let _ = write!(
        b,
        "<form class=\"box\" id=\"bulk\" method=\"post\" action=\"{ctx}/projects/{id}/triage\">\
         <h2>Triage all {total} findings of this selection</h2>{}\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Status <select name=\"status\" id=\"bulk-status\">{status_options}</select></label> \
         <label>Reason <input name=\"comment\" id=\"bulk-comment\" size=\"40\"></label> \
         <button type=\"submit\" id=\"bulk-save\">Apply to {total} findings</button></form>",
        hidden_filters(&q),
        st.csrf.token(&user),
        total = pg.total,
    );
    let export = |kind: &str| {
        let l = table_link(ctx, id, &q, &[("sort", None), ("dir", None)]);
        let (path, query) = l.split_once('?').map_or((l.as_str(), ""), |(p, q)| (p, q));
        format!("{path}/export.{kind}{}{query}", if query.is_empty() { "" } else { "?" })
    };
    let _ = write!(
        b,
        "<p>Export this selection: <a id=\"export-csv\" href=\"{}\">CSV</a> · \
         <a id=\"export-sarif\" href=\"{}\">SARIF 2.1.0</a></p>",
        export("csv"),
        export("sarif")
    );
    Ok(Html(page(&format!("{} – {}", st.config.project, project.name), Some(&user), Some(ctx), &b)))
}
