//! Triage posts: one finding, or every finding a filter selects. Both check the CSRF
//! token and origin (csrf.rs), validate the status, and redirect back with 303.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use serde::Deserialize;

use super::super::auth::User;
use super::super::error::PageError;
use super::super::query::ListQuery;
use super::super::AppState;
use super::id_of;
use super::links::table_link;
use crate::db::findings::{self, TRIAGE_STATUSES};
use crate::db::{listing, projects, DbError};

#[derive(Deserialize)]
pub struct TriageForm {
    status: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    csrf: String,
}

/// The status and the reason, validated and bounded.
fn decision(st: &AppState, form: &TriageForm) -> Result<(String, String), PageError> {
    if !TRIAGE_STATUSES.contains(&form.status.as_str()) {
        return Err(PageError::BadRequest(format!("unknown status {:?}", form.status)));
    }
    let comment = crate::import::clip(form.comment.trim().to_owned(), st.config.limits.max_field_bytes);
    Ok((form.status.clone(), comment))
}

pub async fn triage(
    User(user): User,
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<TriageForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    let id = id_of(id, "finding")?;
    let Form(form) = form.map_err(|e| PageError::BadRequest(format!("bad form: {e}")))?;
    st.csrf.check(&headers, &user, &form.csrf)?;
    let (status, comment) = decision(&st, &form)?;
    let found = st.with_db(move |c| findings::triage(c, id, &status, &comment, &user)).await?;
    if !found {
        return Err(PageError::NotFound("finding"));
    }
    Ok(Redirect::to(&format!("{}/findings/{id}", st.config.context)))
}

#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(flatten)]
    decision: TriageForm,
    #[serde(flatten)]
    selection: ListQuery,
}

/// `POST {ctx}/projects/{id}/triage`: the same decision for every finding the form's
/// filter fields select, in one transaction (all or nothing), each with its history entry.
pub async fn bulk_triage(
    User(user): User,
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<BulkForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    let id = id_of(id, "project")?;
    let Form(form) = form.map_err(|e| PageError::BadRequest(format!("bad form: {e}")))?;
    st.csrf.check(&headers, &user, &form.decision.csrf)?;
    let (status, comment) = decision(&st, &form.decision)?;
    let filter = form.selection.filter();
    let done = st
        .with_db(move |c| {
            let tx = c.transaction()?;
            if projects::get(&tx, id)?.is_none() {
                return Ok(None);
            }
            let ids = listing::ids(&tx, id, &filter)?;
            for fid in &ids {
                findings::triage(&tx, *fid, &status, &comment, &user)?;
            }
            tx.commit()?;
            Ok::<_, DbError>(Some(ids.len()))
        })
        .await?;
    let n = done.ok_or(PageError::NotFound("project"))?;
    tracing::info!(project = id, findings = n, "bulk triage");
    let back = table_link(&st.config.context, id, &form.selection, &[]).replace("&amp;", "&");
    Ok(Redirect::to(&back))
}
