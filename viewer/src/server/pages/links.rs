//! Links within the findings table: the current query with some fields replaced.

use std::fmt::Write;

use super::super::html::{esc, qs};
use super::super::query::{ListQuery, FILTER_FIELDS};

/// `{ctx}/projects/{id}?...` keeping the query's filters, sort and direction, with
/// `changes` applied (None removes a field); escaped for an attribute.
pub fn table_link(ctx: &str, id: i64, q: &ListQuery, changes: &[(&str, Option<&str>)]) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    for (name, _) in FILTER_FIELDS {
        if let Some(v) = q.field(name) {
            fields.push((name, v));
        }
    }
    for (k, v) in [("sort", &q.sort), ("dir", &q.dir)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            fields.push((k, v.to_owned()));
        }
    }
    for (k, v) in changes {
        fields.retain(|(name, _)| name != k);
        if let Some(v) = v {
            fields.push((k, (*v).to_owned()));
        }
    }
    let mut s = format!("{ctx}/projects/{id}");
    for (i, (k, v)) in fields.iter().enumerate() {
        let _ = write!(s, "{}{k}={}", if i == 0 { '?' } else { '&' }, qs(v));
    }
    esc(&s)
}

/// Hidden inputs carrying the query's filters (forms that act on "this selection").
pub fn hidden_filters(q: &ListQuery) -> String {
    let mut s = String::new();
    for (name, _) in FILTER_FIELDS {
        if let Some(v) = q.field(name) {
            let _ = write!(s, "<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(&v));
        }
    }
    s
}
