//! The front door: the one HTTP listener people's browsers use to reach their viewers
//! (docs/frontdoor.md). SWAMP's front end proxied `/<urluuid>/…` to a viewer and named the
//! user in a header; here agent-monitor, which knows each pair's current address, key and
//! users, does that itself on a listener of its own, separate from `/RPC2`:
//!
//! - [`access`]: who is asking (a session cookie, a login token being redeemed, or a
//!   trusted peer's user header) and whether they may see the pair's viewer.
//! - [`proxy`]: the request forwarded, bodies streamed both ways, with the proof the viewer
//!   requires (`vrun_proto::frontdoor`).
//! - [`pages`]: the pages a person sees when the viewer cannot answer (starting, stopping,
//!   stopped, not signed in, forbidden, bad links).
//! - [`settings`]: its flags, resolved. [`tls`]: its optional TLS (rustls).
//!
//! The connection layer is [`crate::edge`], with the front door's own caps.

pub mod access;
pub mod pages;
pub mod proxy;
pub mod settings;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use vrun_proto::ViewerState;

pub use settings::Settings;

use crate::instances::Instance;
use crate::store::Store;

/// Everything the front door's requests share.
pub struct FrontDoor {
    pub settings: Settings,
    /// Signs login tokens and sessions (`<state>/secrets/frontdoor.key`, 0600).
    key: Vec<u8>,
    store: Store,
    /// Set when the front door speaks TLS itself.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Pooled connections to the viewers.
    upstream: proxy::Upstream,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrontDoor(..)")
    }
}

impl FrontDoor {
    /// Loads (or creates at first start) the front door's key.
    pub fn new(settings: Settings, state_dir: &std::path::Path, store: Store) -> anyhow::Result<FrontDoor> {
        let path = state_dir.join("secrets").join("frontdoor.key");
        let key = hex::decode(crate::auth::load_or_create(&path)?)
            .map_err(|_| anyhow::anyhow!("secret {} is not hexadecimal; fix or remove it", path.display()))?;
        let tls = match &settings.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        let upstream = proxy::upstream(settings.connect_timeout);
        Ok(FrontDoor { settings, key, store, tls, upstream })
    }

    /// The router of the front door's listener: every path is one handler.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(Arc::clone(self))
    }
}

/// `/<urluuid>` and the rest of the path (with its leading `/`), if the path names a viewer.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    vrun_proto::job::is_urluuid(first).then_some((first, tail))
}

async fn handle(
    State(fd): State<Arc<FrontDoor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_owned();
    let Some((urluuid, tail)) = split_path(&path) else {
        return pages::not_found();
    };
    let urluuid = urluuid.to_owned();
    let u = urluuid.clone();
    let inst = match fd.store.read(move |c| crate::instances::by_urluuid(c, &u)).await {
        Ok(Some(i)) => i,
        Ok(None) => return pages::not_found(),
        Err(e) => {
            tracing::error!(error = %e.message, "front door cannot read the store");
            return pages::unavailable();
        }
    };
    if tail.is_empty() {
        // The cookie's path is `/<urluuid>/`; the bare path would not carry it.
        let q = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        return Redirect::permanent(&format!("/{urluuid}/{q}")).into_response();
    }
    if let Some(token) = access::login_param(req.uri().query()) {
        return access::redeem(&fd, &inst, &token, req.uri()).await;
    }
    // The API answers to its key alone (the viewer checks it): launchviewer may push here.
    let api = tail.starts_with("/api/") && access::carries_api_key(req.headers());
    let user = if api {
        None
    } else {
        let Some(user) = access::who(&fd, &urluuid, peer, req.headers()) else {
            return pages::not_signed_in();
        };
        match access::authorised(&fd.store, &inst, &user).await {
            Ok(true) => {}
            Ok(false) => return pages::forbidden(&user),
            Err(e) => {
                tracing::error!(error = %e.message, "front door cannot read the store");
                return pages::unavailable();
            }
        }
        Some(user)
    };
    forward_by_state(&fd, inst, user, req).await
}

async fn forward_by_state(fd: &FrontDoor, inst: Instance, user: Option<String>, req: Request) -> Response {
    match inst.state {
        ViewerState::Ready if !inst.address.is_empty() => {
            match proxy::forward(fd, &inst.address, &inst.apikey, user.as_deref(), req).await {
                Ok(resp) => resp,
                // Up but not answering: its viewer is (re)starting inside the VM.
                Err(proxy::ProxyError::Connect(e)) => {
                    tracing::info!(address = %inst.address, error = %e, "viewer not answering; showing the starting page");
                    pages::starting()
                }
                Err(e) => {
                    tracing::warn!(address = %inst.address, error = %e, "forwarding to the viewer failed");
                    pages::bad_gateway()
                }
            }
        }
        ViewerState::Launching | ViewerState::Booting | ViewerState::Ready => pages::starting(),
        ViewerState::Stopping if inst.relaunch_pending => pages::starting(),
        ViewerState::Stopping => pages::stopping(),
        ViewerState::Stopped | ViewerState::Failed => pages::gone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_viewer() {
        let u = "proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b";
        assert_eq!(split_path(&format!("/{u}/projects/1")), Some((u, "/projects/1")));
        assert_eq!(split_path(&format!("/{u}")), Some((u, "")));
        assert_eq!(split_path("/RPC2"), None);
        assert_eq!(split_path("/proxy-x/"), None);
        assert_eq!(split_path(""), None);
    }
}
