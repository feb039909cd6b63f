//! The front door's own pages: what a person sees when the viewer cannot answer them.
//! Each has a stable `<h1>` (tests and docs/frontdoor.md name them) and says what to do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Seconds between reloads of the starting and stopping pages.
const RELOAD_SECS: u32 = 3;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, body: &str, reload: bool) -> Response {
    let refresh =
        if reload { format!("<meta http-equiv=\"refresh\" content=\"{RELOAD_SECS}\">") } else { String::new() };
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;color:#222}}</style></head>\
         <body><h1>{t}</h1><p>{body}</p></body></html>",
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if reload {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RELOAD_SECS));
    }
    resp
}

pub fn starting() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "This viewer is starting",
        "Your findings will appear here in a moment: this page reloads itself.",
        true,
    )
}

pub fn stopping() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "This viewer is stopping",
        "It is saving its database. This page reloads itself; when it says the viewer was \
         stopped, use View again in the SWAMP web site to start it.",
        true,
    )
}

pub fn gone() -> Response {
    page(
        StatusCode::GONE,
        "This viewer was stopped",
        "Viewers stop when nobody has used them for a while. Use View again in the SWAMP web \
         site to start it; your triage was saved and comes back.",
        false,
    )
}

pub fn not_signed_in() -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        "You are not signed in to this viewer",
        "Open it with View in the SWAMP web site: the link it gives you signs you in (each link \
         works once and for a few minutes). If your site signs you in through its portal, open \
         the viewer from there.",
        false,
    )
}

pub fn forbidden(user: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Access denied",
        &format!(
            "User {} may not see this viewer. Ask the project's owner for access, then use View \
             in the SWAMP web site.",
            escape(user)
        ),
        false,
    )
}

pub fn link_used() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This sign-in link was already used",
        "Each link works once. Use View again in the SWAMP web site for a new one.",
        false,
    )
}

pub fn link_expired() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This sign-in link has expired",
        "Links work for a few minutes only. Use View again in the SWAMP web site for a new one.",
        false,
    )
}

pub fn link_invalid() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This sign-in link is not valid for this viewer",
        "It was altered, or made for another viewer. Use View in the SWAMP web site for the \
         viewer you want.",
        false,
    )
}

pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "No viewer here",
        "This address names no viewer. Use View in the SWAMP web site.",
        false,
    )
}

pub fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The viewer service is busy",
        "Try again in a moment; this page reloads itself.",
        true,
    )
}

pub fn bad_gateway() -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        "The viewer did not answer",
        "It may be overloaded or restarting. Reload the page in a moment; if this persists, \
         use View again in the SWAMP web site.",
        false,
    )
}
