//! Who is asking at the front door, and whether they may see a pair's viewer.
//!
//! A person arrives with the printed URL's login token (`vrun_login`): it is checked
//! (signature, viewer, expiry), recorded as used (single-use: `used_logins` remembers it
//! until it expires), and exchanged for a session cookie scoped to the viewer's path; the
//! answer redirects to the same URL without the token, so it leaves the address bar and
//! history. After that the cookie says who they are. Sites whose portal already
//! authenticated the user may instead send the user in a header from configured peers.
//!
//! May see: the user of the launch that started the current generation, and every user in
//! `viewer_users` for the pair (added by `agentMonitor.viewerLogin`).

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use rusqlite::{params, Connection, OptionalExtension};
use vrun_proto::frontdoor::{self as signed, Login, SignedError, LOGIN_PARAM, SESSION_COOKIE};
use vrun_proto::{FaultCode, Pair, RpcError};

use super::{pages, FrontDoor};
use crate::instances::Instance;
use crate::store::{now_ms, Db, Store};

fn now_secs() -> i64 {
    now_ms() / 1000
}

/// The login token in a query string, if any.
pub fn login_param(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| kv.strip_prefix(LOGIN_PARAM)?.strip_prefix('=')).map(String::from)
}

/// The query string without the login token (`?…` or empty).
fn query_without_login(query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(LOGIN_PARAM))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// A request that presents the viewer's API key (the viewer itself checks it).
pub fn carries_api_key(h: &HeaderMap) -> bool {
    h.contains_key("api-key")
        || h.get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.len() > 11 && v[..11].eq_ignore_ascii_case("system-key "))
}

/// The user the request speaks for: a trusted peer's header, else a valid session cookie.
pub fn who(fd: &FrontDoor, urluuid: &str, peer: SocketAddr, h: &HeaderMap) -> Option<String> {
    if fd.settings.trusted_peers.contains(&peer.ip()) {
        let named = h.get(&fd.settings.user_header).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(u) = named.filter(|u| vrun_proto::validate_name("user", u).is_ok()) {
            return Some(u.to_owned());
        }
    }
    let now = now_secs();
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .find_map(|v| signed::check_session(&fd.key, urluuid, v, now).ok())
}

/// Whether `user` may see `inst`'s pair.
pub async fn authorised(store: &Store, inst: &Instance, user: &str) -> Result<bool, RpcError> {
    if inst.user.as_deref() == Some(user) || inst.relaunch_user.as_deref() == Some(user) {
        return Ok(true);
    }
    let (pair, user) = (inst.pair.clone(), user.to_owned());
    store.read(move |c| is_listed(c, &pair, &user)).await
}

fn is_listed(c: &Connection, pair: &Pair, user: &str) -> Db<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM viewer_users WHERE project = ?1 AND viewer = ?2 AND user = ?3")?
        .query_row(params![pair.project(), pair.viewer(), user], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A fresh login for `user` at the pair's viewer, minted inside a store transaction: the
/// user becomes authorised for the pair. Returns (the viewer's base URL, token, expiry);
/// without a user, no token (the clean URL only).
pub fn mint(c: &Connection, fd: &FrontDoor, pair: &Pair, user: Option<&str>) -> Db<(String, String, i64)> {
    let inst = crate::instances::latest(c, pair)?
        .ok_or_else(|| RpcError::new(FaultCode::UnknownInstance, format!("{pair} has never been launched")))?;
    let base = format!("{}/{}/", fd.settings.url, inst.urluuid);
    let Some(user) = user else {
        return Ok((base, String::new(), 0));
    };
    c.prepare_cached("INSERT OR IGNORE INTO viewer_users (project, viewer, user, added_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![pair.project(), pair.viewer(), user, now_ms()])?;
    let id = crate::private::random_hex(16).map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))?;
    let expires = now_secs() + fd.settings.login_ttl.as_secs() as i64;
    let token = signed::make_login(&fd.key, &inst.urluuid, &Login { id, user: user.into(), expires });
    Ok((base, token, expires))
}

/// Records a token as used; false if it already was. Forgets expired ones on the way.
fn use_once(c: &Connection, l: &Login) -> Db<bool> {
    c.prepare_cached("DELETE FROM used_logins WHERE expires_ms < ?1")?.execute(params![now_ms()])?;
    let n = c
        .prepare_cached("INSERT OR IGNORE INTO used_logins (id, expires_ms) VALUES (?1, ?2)")?
        .execute(params![l.id, l.expires * 1000])?;
    Ok(n == 1)
}

/// Exchanges a login token for a session cookie and redirects to the clean URL.
pub async fn redeem(fd: &FrontDoor, inst: &Instance, token: &str, uri: &Uri) -> Response {
    let login = match signed::check_login(&fd.key, &inst.urluuid, token, now_secs()) {
        Ok(l) => l,
        Err(SignedError::Expired) => return pages::link_expired(),
        Err(_) => return pages::link_invalid(),
    };
    let l = login.clone();
    match fd.store.write(move |c| use_once(c, &l)).await {
        Ok(true) => {}
        Ok(false) => return pages::link_used(),
        Err(e) => {
            tracing::error!(error = %e.message, "front door cannot record a used login");
            return pages::unavailable();
        }
    }
    match authorised(&fd.store, inst, &login.user).await {
        Ok(true) => {}
        Ok(false) => return pages::forbidden(&login.user),
        Err(_) => return pages::unavailable(),
    }
    tracing::info!(user = %login.user, pair = %inst.pair, "front door sign-in");
    let ttl = fd.settings.session_ttl.as_secs();
    let value = signed::make_session(&fd.key, &inst.urluuid, &login.user, now_secs() + ttl as i64);
    let secure = if fd.settings.secure_cookie { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={value}; Path=/{}/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}", inst.urluuid);
    let to = format!("{}{}", uri.path(), query_without_login(uri.query()));
    let mut resp = axum::response::Redirect::to(&to).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    // The redirect itself must not be cached or it would skip the exchange next time.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Nor may the token travel on as a referrer.
    resp.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_parameter_is_found_and_removed() {
        assert_eq!(login_param(Some("a=1&vrun_login=t.1.x.u&b=2")).as_deref(), Some("t.1.x.u"));
        assert_eq!(login_param(Some("vrun_loginx=1")), None);
        assert_eq!(login_param(None), None);
        assert_eq!(query_without_login(Some("a=1&vrun_login=t&b=2")), "?a=1&b=2");
        assert_eq!(query_without_login(Some("vrun_login=t")), "");
        assert_eq!(query_without_login(None), "");
    }

    #[test]
    fn api_key_headers() {
        let mut h = HeaderMap::new();
        assert!(!carries_api_key(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("SWAMP alice"));
        assert!(!carries_api_key(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("System-Key abc"));
        assert!(carries_api_key(&h));
    }
}
