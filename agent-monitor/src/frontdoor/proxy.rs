//! Forwarding one request to a viewer: bodies stream both ways (a 64 MiB upload is never
//! held whole), the client's credentials stay behind, and the proof the viewer requires is
//! added.
//!
//! Upstream connections are pooled ([`Upstream`]): a connection per request cost a TCP
//! handshake (8 % of the front door's CPU per proxied page), an accept and a new connection
//! task in the viewer (docs/performance.md). A pooled connection carries requests of any
//! user: each request brings its own proof, and the viewer keeps no state per connection.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Uri};
use axum::response::Response;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use vrun_proto::frontdoor::{make_proof, PROOF_HEADER};

use super::FrontDoor;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The viewer is not listening (yet, or any more).
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Http(String),
    #[error("bad request target: {0}")]
    Target(String),
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus what the
/// viewer must never see from a client: credentials (the proof is the front door's alone;
/// the session cookie is the front door's business). `Expect` was answered to the client by
/// the front door's own server already.
const DROPPED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    PROOF_HEADER,
    "x-swamp-user",
    "cookie",
    "proxy-authorization",
];

/// Idle connections kept per viewer address: enough for a person's browser (about six at
/// once) and launchviewer; more are opened when needed and closed after their request.
const IDLE_PER_VIEWER: usize = 8;
/// An idle upstream connection is closed after this. A relaunched viewer has a new address,
/// so connections to an old one are not used again and go after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The front door's client towards viewers: keep-alive connections pooled per address.
pub type Upstream = Client<HttpConnector, Body>;

pub fn upstream(connect_timeout: Duration) -> Upstream {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(IDLE_PER_VIEWER)
        .pool_timer(TokioTimer::new())
        .build(c)
}

fn strip(h: &mut axum::http::HeaderMap, extra: &[&HeaderName]) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in DROPPED {
        h.remove(n);
    }
    for n in named.iter().chain(extra.iter().copied()) {
        h.remove(n);
    }
}

/// Sends `req` to the viewer at `address`, as `user` (with a proof) or, for the API, with
/// whatever key the client presented. Returns the viewer's answer with its body streaming.
pub async fn forward(
    fd: &FrontDoor,
    address: &str,
    apikey: &str,
    user: Option<&str>,
    req: Request,
) -> Result<Response, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = format!("http://{address}{target}").parse::<Uri>().map_err(|e| ProxyError::Target(e.to_string()))?;
    parts.version = axum::http::Version::HTTP_11;
    strip(&mut parts.headers, &[&fd.settings.user_header]);
    if let Some(u) = user {
        // A page request: the user's browser sent no key, and must not pass one on.
        parts.headers.remove(header::AUTHORIZATION);
        parts.headers.remove("api-key");
        let proof = make_proof(apikey, u, crate::store::now_ms() / 1000);
        let mut v = HeaderValue::from_str(&proof).map_err(|e| ProxyError::Target(e.to_string()))?;
        v.set_sensitive(true);
        parts.headers.insert(PROOF_HEADER, v);
    }
    // Host becomes the viewer's own address; the host the browser used goes on as
    // X-Forwarded-Host (ours, never the client's), which the viewer checks a form's Origin
    // against (its CSRF defence): without it every triage post through here was refused.
    let browser_host = parts.headers.remove(header::HOST);
    parts.headers.remove("x-forwarded-host");
    if let Some(h) = browser_host {
        parts.headers.insert("x-forwarded-host", h);
    }
    if let Ok(v) = HeaderValue::from_str(address) {
        parts.headers.insert(header::HOST, v);
    }
    let timeout = fd.settings.request_timeout;
    let answer = match tokio::time::timeout(timeout, fd.upstream.request(hyper::Request::from_parts(parts, body))).await
    {
        Err(_) => return Err(ProxyError::Timeout(timeout)),
        // Not listening (yet, or any more), or no connection within the connect timeout.
        Ok(Err(e)) if e.is_connect() => return Err(ProxyError::Connect(error_chain(&e))),
        Ok(Err(e)) => return Err(ProxyError::Http(error_chain(&e))),
        Ok(Ok(a)) => a,
    };
    let (mut parts, body) = answer.into_parts();
    strip(&mut parts.headers, &[]);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The error and its causes ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
