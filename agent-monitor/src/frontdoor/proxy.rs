//! Forwarding one request to a viewer: bodies stream both ways (a 64 MiB upload is never
//! held whole), the client's credentials stay behind, and the proof the viewer requires is
//! added. One upstream connection per request: the viewer is on a hypervisor-local forward,
//! so a pool would save little and would need its own limits.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Uri};
use axum::response::Response;
use hyper_util::rt::TokioIo;
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
    Http(#[from] hyper::Error),
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
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    parts.uri = target.parse::<Uri>().map_err(|e| ProxyError::Target(e.to_string()))?;
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
    if let Ok(v) = HeaderValue::from_str(address) {
        parts.headers.insert(header::HOST, v);
    }
    let s = &fd.settings;
    let stream = tokio::time::timeout(s.connect_timeout, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| ProxyError::Connect(format!("no connection within {:?}", s.connect_timeout)))?
        .map_err(|e| ProxyError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Connect(e.to_string()))?;
    // Drives the connection until the answer's body is read (or either side goes away).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "viewer connection ended with an error");
        }
    });
    let answer = tokio::time::timeout(s.request_timeout, sender.send_request(hyper::Request::from_parts(parts, body)))
        .await
        .map_err(|_| ProxyError::Timeout(s.request_timeout))??;
    let (mut parts, body) = answer.into_parts();
    strip(&mut parts.headers, &[]);
    Ok(Response::from_parts(parts, Body::new(body)))
}
