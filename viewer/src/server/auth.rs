//! Who is asking: the system key for `/api`, a front-end-named user for the pages.
//!
//! - API: `API-Key: <key>` (Code Dx's header) or `Authorization: System-Key <key>` (what
//!   SWAMP's pusher sent). Compared in constant time over SHA-256 digests, so neither the
//!   key's content nor its length leaks through timing.
//! - Pages: `X-Vrun-Proof: v1:<secs>:<user>:<hmac>`, which only agent-monitor's front door
//!   can make (keyed by a derivation of this viewer's API key; see `vrun_proto::frontdoor`).
//!   The front door decides who may see this viewer (the job's users and those added since),
//!   so the proof's user is taken as is. `Authorization: SWAMP <user>` and `X-Swamp-User`
//!   (what SWAMP's proxy sent) are no longer enough: anyone on the host who reaches the
//!   VM's forward could send them. A missing or bad proof gets 403: there is no login this
//!   server could offer, so 401 would only invite a browser password prompt.
//!
//! Every accepted request except `GET /api/activity` counts as activity (the idle
//! shutdown timer inside the VM reads it through that endpoint).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vrun_proto::frontdoor;

use super::error::{ApiError, PageError};
use super::AppState;

/// Proof that a request carried the system key; touches activity.
pub struct ApiKey;

/// Like [`ApiKey`] but does not count as activity.
pub struct ApiKeyQuiet;

/// The user the front end vouched for, checked against the configured list.
pub struct User(pub String);

/// Digests first, so that the comparison is of equal lengths whatever was presented.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// The value after a case-insensitive auth scheme in `Authorization`, if it matches.
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("api-key").and_then(|v| v.to_str().ok()).map(str::trim).or_else(|| authorization(headers, "System-Key"))
}

fn check_key(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    match presented_key(&parts.headers) {
        Some(k) if constant_time_eq(k, &state.config.apikey) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("invalid API key")),
        None => Err(ApiError::Unauthorized("missing API key: send API-Key: <key> or Authorization: System-Key <key>")),
    }
}

impl FromRequestParts<Arc<AppState>> for ApiKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        check_key(parts, state)?;
        state.touch();
        Ok(ApiKey)
    }
}

impl FromRequestParts<Arc<AppState>> for ApiKeyQuiet {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        check_key(parts, state)?;
        Ok(ApiKeyQuiet)
    }
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, PageError> {
        let proof = parts.headers.get(frontdoor::PROOF_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            PageError::Forbidden("Open this viewer through the link the SWAMP web site gives you.".into())
        })?;
        let name = frontdoor::check_proof(&state.config.apikey, proof, crate::db::now()).map_err(|e| {
            tracing::warn!(error = %e, "refused a page request with a bad front door proof");
            PageError::Forbidden("This request did not come through the viewer's front door.".into())
        })?;
        state.touch();
        Ok(User(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("authorization", "system-key  abc ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("abc"));
        h.insert("authorization", "SWAMP alice".parse().unwrap());
        assert_eq!(presented_key(&h), None);
        assert_eq!(authorization(&h, "swamp"), Some("alice"));
        h.insert("api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        assert!(constant_time_eq("k1", "k1"));
        assert!(!constant_time_eq("k1", "k2"));
        assert!(!constant_time_eq("k1", "k1x"));
    }
}
