//! Response headers every answer carries, and the one script the pages load.
//!
//! - `Content-Security-Policy`: nothing by default; the page's own style (by hash) and
//!   script (same origin); forms post only here; no framing (`frame-ancestors 'none'`,
//!   plus `X-Frame-Options` for old browsers).
//! - `X-Content-Type-Options: nosniff`; `Referrer-Policy: same-origin` (not `no-referrer`:
//!   with that, Chromium sends `Origin: null` on the forms' own posts, which the origin
//!   check must refuse).
//! - `Cache-Control: no-store`: pages and API answers hold triage data of one user's
//!   project; shared caches and the back button must not keep them.

use std::sync::OnceLock;

use axum::http::header::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::html::STYLE;

fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let style = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        let v = format!(
            "default-src 'none'; style-src 'sha256-{style}'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        HeaderValue::from_str(&v).expect("the policy is ASCII")
    })
}

/// Adds the headers above to a response (axum `map_response` middleware).
pub async fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(HeaderName::from_static("content-security-policy"), csp().clone());
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
    h.insert(HeaderName::from_static("cache-control"), HeaderValue::from_static("no-store"));
    r
}

/// Shows every `<time datetime=...>` in the reader's local time zone.
const LOCAL_TIME_JS: &str = "document.querySelectorAll('time[datetime]').forEach(function(t){\
var d=new Date(t.getAttribute('datetime'));if(!isNaN(d)){t.title=t.textContent;t.textContent=d.toLocaleString();}});";

pub async fn local_time_js() -> Response {
    ([("content-type", "text/javascript; charset=utf-8")], LOCAL_TIME_JS).into_response()
}
