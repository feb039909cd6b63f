//! The front door's signed strings: login tokens, session cookies and the proof header.
//!
//! A person reaches a viewer only through agent-monitor's front door (docs/frontdoor.md).
//! Three things are signed with HMAC-SHA-256, all bound to the viewer's `urluuid` (stable
//! per pair), so a string made for one viewer is worthless at another:
//!
//! - **Login token** (`<id>.<expires>.<mac>.<user>`, in the printed URL's `vrun_login`
//!   query parameter): minted by agent-monitor for one user, valid for minutes, redeemed
//!   once (the front door remembers used ids until they expire). Key: the front door's own.
//! - **Session** (`<expires>.<mac>.<user>`, the `vrun_session` cookie): what a redeemed
//!   token becomes. Key: the front door's own.
//! - **Proof** (`X-Vrun-Proof: v1:<unix secs>:<user>:<mac>`): added by the front door to
//!   every request it forwards; the viewer serves pages only with a fresh one. Key: derived
//!   from the viewer's API key, which only agent-monitor and that viewer hold. A browser
//!   or anyone else on the host who reaches the viewer's port directly cannot make one.
//!
//! User names follow `names::validate_name`; the user is the last field of each string.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header the viewer requires on page requests.
pub const PROOF_HEADER: &str = "x-vrun-proof";
/// A proof older or newer than this (seconds) is refused (clock skew between host and VM
/// stays well inside it; a captured proof is useless after it).
pub const PROOF_WINDOW_SECS: i64 = 300;
/// The query parameter of the printed URL that carries the login token.
pub const LOGIN_PARAM: &str = "vrun_login";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vrun_session";

/// Why a signed string was refused. Each has its own page at the front door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("malformed")]
    Malformed,
    #[error("signature does not match (altered, or made for another viewer)")]
    BadSignature,
    #[error("expired")]
    Expired,
}

fn mac(key: &[u8], parts: &[&str]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        // Length-prefixed, so no two different part lists sign the same bytes.
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p.as_bytes());
    }
    m
}

fn sign(key: &[u8], parts: &[&str]) -> String {
    hex::encode(mac(key, parts).finalize().into_bytes())
}

fn verify(key: &[u8], parts: &[&str], presented_hex: &str) -> Result<(), SignedError> {
    let bytes = hex::decode(presented_hex).map_err(|_| SignedError::Malformed)?;
    mac(key, parts).verify_slice(&bytes).map_err(|_| SignedError::BadSignature)
}

fn user_ok(u: &str) -> bool {
    crate::names::validate_name("user", u).is_ok()
}

/// A login token's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Random, hex; remembered once used.
    pub id: String,
    pub user: String,
    /// Unix seconds.
    pub expires: i64,
}

/// `<id>.<expires>.<mac>.<user>` for `urluuid`.
pub fn make_login(key: &[u8], urluuid: &str, l: &Login) -> String {
    let exp = l.expires.to_string();
    let m = sign(key, &["login", urluuid, &l.id, &exp, &l.user]);
    format!("{}.{exp}.{m}.{}", l.id, l.user)
}

/// Checks a login token presented at `urluuid`'s path; does not check whether it was used.
pub fn check_login(key: &[u8], urluuid: &str, token: &str, now: i64) -> Result<Login, SignedError> {
    let mut it = token.splitn(4, '.');
    let (Some(id), Some(exp), Some(m), Some(user)) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(SignedError::Malformed);
    };
    let expires: i64 = exp.parse().map_err(|_| SignedError::Malformed)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || !user_ok(user) {
        return Err(SignedError::Malformed);
    }
    verify(key, &["login", urluuid, id, exp, user], m)?;
    if now > expires {
        return Err(SignedError::Expired);
    }
    Ok(Login { id: id.into(), user: user.into(), expires })
}

/// `<expires>.<mac>.<user>`: the session cookie's value.
pub fn make_session(key: &[u8], urluuid: &str, user: &str, expires: i64) -> String {
    let exp = expires.to_string();
    let m = sign(key, &["session", urluuid, &exp, user]);
    format!("{exp}.{m}.{user}")
}

/// The user of a valid session cookie value.
pub fn check_session(key: &[u8], urluuid: &str, value: &str, now: i64) -> Result<String, SignedError> {
    let mut it = value.splitn(3, '.');
    let (Some(exp), Some(m), Some(user)) = (it.next(), it.next(), it.next()) else {
        return Err(SignedError::Malformed);
    };
    let expires: i64 = exp.parse().map_err(|_| SignedError::Malformed)?;
    if !user_ok(user) {
        return Err(SignedError::Malformed);
    }
    verify(key, &["session", urluuid, exp, user], m)?;
    if now > expires {
        return Err(SignedError::Expired);
    }
    Ok(user.into())
}

/// The proof key of a viewer: derived from its API key, so the API key itself never
/// travels with page requests.
fn proof_key(apikey: &str) -> Vec<u8> {
    mac(apikey.as_bytes(), &["vrun front door proof v1"]).finalize().into_bytes().to_vec()
}

/// `v1:<now>:<user>:<mac>`: the front door vouches that `user` may see this viewer.
pub fn make_proof(apikey: &str, user: &str, now: i64) -> String {
    let t = now.to_string();
    format!("v1:{t}:{user}:{}", sign(&proof_key(apikey), &["proof", &t, user]))
}

/// The user a proof vouches for, if it is well-formed, signed with this viewer's key and
/// made within [`PROOF_WINDOW_SECS`] of `now`.
pub fn check_proof(apikey: &str, value: &str, now: i64) -> Result<String, SignedError> {
    let mut it = value.trim().splitn(4, ':');
    let (Some("v1"), Some(t), Some(user), Some(m)) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(SignedError::Malformed);
    };
    let at: i64 = t.parse().map_err(|_| SignedError::Malformed)?;
    if !user_ok(user) {
        return Err(SignedError::Malformed);
    }
    verify(&proof_key(apikey), &["proof", t, user], m)?;
    if (now - at).abs() > PROOF_WINDOW_SECS {
        return Err(SignedError::Expired);
    }
    Ok(user.into())
}

/// `agentMonitor.viewerLogin(struct{project, viewer, user?})` → `struct{url, token, expires}`:
/// a login for `user` at the pair's viewer (launcher or admin role). The user becomes
/// authorised for the pair. `url` is the viewer's base at the front door
/// (`<front door>/<urluuid>/`); a findings link is `url + "projects/<id>?vrun_login=" + token`.
/// Without `user`, `token` is empty (the clean URL only). All empty when this agent-monitor
/// runs no front door. Fault 3 (unknown instance) if the pair was never launched.
pub const VIEWER_LOGIN: &str = "agentMonitor.viewerLogin";

/// The request of [`VIEWER_LOGIN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerLogin {
    pub pair: crate::Pair,
    pub user: Option<String>,
}

impl ViewerLogin {
    pub fn from_params(params: &[dxr::Value]) -> Result<ViewerLogin, crate::RpcError> {
        let mut r = crate::value::StructReader::single(params)?;
        let pair = crate::Pair::new(&r.req_str("project")?, &r.req_str("viewer")?)?;
        let user = r.opt_str("user")?;
        if let Some(u) = &user {
            crate::names::validate_name("user", u).map_err(|e| crate::RpcError::invalid_params(e.to_string()))?;
        }
        r.finish()?;
        Ok(ViewerLogin { pair, user })
    }

    pub fn to_params(&self) -> Vec<dxr::Value> {
        vec![crate::value::StructBuilder::new()
            .str("project", self.pair.project())
            .str("viewer", self.pair.viewer())
            .opt_str("user", self.user.as_deref())
            .build()]
    }
}

/// The reply of [`VIEWER_LOGIN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginReply {
    pub url: String,
    pub token: String,
    /// Unix seconds.
    pub expires: i64,
}

impl LoginReply {
    pub fn to_value(&self) -> dxr::Value {
        crate::value::StructBuilder::new()
            .str("url", &self.url)
            .str("token", &self.token)
            .int("expires", self.expires)
            .build()
    }

    pub fn from_value(v: &dxr::Value) -> Result<LoginReply, crate::RpcError> {
        let mut r = crate::value::StructReader::single(std::slice::from_ref(v))?;
        Ok(LoginReply { url: r.req_str("url")?, token: r.req_str("token")?, expires: r.req_int("expires")? })
    }

    /// The link a person opens: the findings page of viewer project `id`, signing them in
    /// when there is a token. `None` without a front door.
    pub fn findings_link(&self, id: i64) -> Option<String> {
        if self.url.is_empty() {
            None
        } else if self.token.is_empty() {
            Some(format!("{}projects/{id}", self.url))
        } else {
            Some(format!("{}projects/{id}?{LOGIN_PARAM}={}", self.url, self.token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b";
    const U2: &str = "proxy-1f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b";

    #[test]
    fn login_round_trip_and_refusals() {
        let key = [7u8; 32];
        let l = Login { id: "ab12".into(), user: "a_li-ce".into(), expires: 1000 };
        let t = make_login(&key, U1, &l);
        assert_eq!(check_login(&key, U1, &t, 999), Ok(l.clone()));
        assert_eq!(check_login(&key, U1, &t, 1001), Err(SignedError::Expired));
        assert_eq!(check_login(&key, U2, &t, 999), Err(SignedError::BadSignature), "another viewer");
        assert_eq!(check_login(&[8u8; 32], U1, &t, 999), Err(SignedError::BadSignature), "another key");
        let other_user = t.replace("a_li-ce", "mallory");
        assert_eq!(check_login(&key, U1, &other_user, 999), Err(SignedError::BadSignature));
        let later = t.replacen(".1000.", ".9999.", 1);
        assert_eq!(check_login(&key, U1, &later, 999), Err(SignedError::BadSignature));
        assert_eq!(check_login(&key, U1, "x", 0), Err(SignedError::Malformed));
        assert_eq!(check_login(&key, U1, &t.replace("a_li-ce", "a b"), 0), Err(SignedError::Malformed));
    }

    #[test]
    fn session_round_trip_and_refusals() {
        let key = [1u8; 32];
        let s = make_session(&key, U1, "bob", 50);
        assert_eq!(check_session(&key, U1, &s, 50).as_deref(), Ok("bob"));
        assert_eq!(check_session(&key, U2, &s, 50), Err(SignedError::BadSignature));
        assert_eq!(check_session(&key, U1, &s, 51), Err(SignedError::Expired));
        assert_eq!(check_session(&key, U1, &s.replace("bob", "eve"), 0), Err(SignedError::BadSignature));
    }

    #[test]
    fn proof_round_trip_and_refusals() {
        let k = "0123456789abcdef0123456789abcdef";
        let p = make_proof(k, "alice", 10_000);
        assert_eq!(check_proof(k, &p, 10_000 + PROOF_WINDOW_SECS).as_deref(), Ok("alice"));
        assert_eq!(check_proof(k, &p, 10_000 - PROOF_WINDOW_SECS).as_deref(), Ok("alice"));
        assert_eq!(check_proof(k, &p, 10_001 + PROOF_WINDOW_SECS), Err(SignedError::Expired));
        assert_eq!(check_proof("ffff456789abcdef0123456789abcdef", &p, 10_000), Err(SignedError::BadSignature));
        assert_eq!(check_proof(k, &p.replace("alice", "mallo"), 10_000), Err(SignedError::BadSignature));
        assert_eq!(check_proof(k, "alice", 10_000), Err(SignedError::Malformed));
        assert_eq!(check_proof(k, "", 10_000), Err(SignedError::Malformed));
    }
}
