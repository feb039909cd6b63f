//! The front door's settings (flags `--front-door-*`, documented in docs/operations.md).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::edge::EdgeLimits;

/// Resolved: every value decided.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `scheme://host[:port]` without a trailing slash: what printed URLs start with.
    pub url: String,
    /// Peers whose `user_header` names the user (a portal or TLS proxy that authenticated them).
    pub trusted_peers: Vec<IpAddr>,
    pub user_header: http::HeaderName,
    pub secure_cookie: bool,
    /// Certificate chain and key (PEM) when the front door speaks TLS itself.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub login_ttl: Duration,
    pub session_ttl: Duration,
    /// Connecting to a viewer.
    pub connect_timeout: Duration,
    /// From forwarding a request until the viewer's answer starts (covers an upload).
    pub request_timeout: Duration,
    pub edge: EdgeLimits,
}
