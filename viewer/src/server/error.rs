//! The two kinds of failure a request can end in, each rendered for its side: JSON for the
//! API, a small HTML page for the pages. Here rather than beside their handlers because the
//! extractors in `auth.rs` reject with them too.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::html::{esc, page};
use crate::db::DbError;

/// API failures, each with its status; the body is `{"error": "<message>"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no or wrong system key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400: the request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 404
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: e.g. a project name that is taken.
    #[error("{0}")]
    Conflict(String),
    /// 413 (or the status the body reader chose): upload over the limit.
    #[error("{1}")]
    Upload(StatusCode, String),
    /// 500: storage trouble; details go to the log, not the client.
    #[error("internal error")]
    Internal(#[from] DbError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Upload(s, _) => *s,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!("api: {e}");
        }
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::Internal(DbError::Io(e))
    }
}

/// Page failures, rendered as small HTML pages with their status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 403: no user, or a user not on this project's list.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 400
    #[error("{0}")]
    BadRequest(String),
    /// 500; details are logged only.
    #[error("internal error")]
    Internal(#[from] DbError),
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::Internal(e) = &self {
            tracing::error!("page: {e}");
        }
        let title = match self.status() {
            StatusCode::FORBIDDEN => "Access denied",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            _ => "Error",
        };
        (self.status(), Html(page(title, None, None, &format!("<p>{}</p>", esc(&self.to_string()))))).into_response()
    }
}
