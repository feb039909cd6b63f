//! Cross-site request forgery defence for the page forms (triage, bulk triage).
//!
//! The front end adds the user's identity to every request it proxies, so a form on
//! another site could post here as the user. Three checks, any of which refuses:
//! `Sec-Fetch-Site: cross-site` (browsers label such requests); an `Origin` that is not
//! this server's own (Host, or X-Forwarded-Host behind a proxy; `null` counts as foreign);
//! and a token in the form that only a page of this server, rendered for this user, has:
//! HMAC-SHA256 over the user name with a per-process random key (a restart invalidates
//! open forms, which then say so).

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::PageError;

/// The per-process key tokens are made with.
pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    pub fn random() -> CsrfKey {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the OS random source is available");
        CsrfKey(k)
    }

    /// The token for `user`'s forms (hex).
    pub fn token(&self, user: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"vrun-viewer-form\0");
        mac.update(user.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Refuses a form post that did not come from this server's own page for `user`.
    pub fn check(&self, headers: &HeaderMap, user: &str, presented: &str) -> Result<(), PageError> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if header("sec-fetch-site") == Some("cross-site") {
            return Err(PageError::Forbidden("Cross-site form submissions are not accepted.".into()));
        }
        if let Some(origin) = header("origin") {
            // A chain of proxies lists hosts, the client-facing one first.
            let forwarded = header("x-forwarded-host").and_then(|h| h.split(',').next()).map(str::trim);
            let own = forwarded.or(header("host")).unwrap_or("");
            let host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
            if own.is_empty() || !host.eq_ignore_ascii_case(own) {
                return Err(PageError::Forbidden(format!("Form posted from another origin ({origin}).")));
            }
        }
        let want = self.token(user);
        if !bool::from(want.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(PageError::Forbidden(
                "The form is out of date or did not come from this viewer; reload the page and try again.".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_per_user_and_per_key() {
        let (k1, k2) = (CsrfKey::random(), CsrfKey::random());
        assert_eq!(k1.token("alice").len(), 64);
        assert_ne!(k1.token("alice"), k1.token("bob"));
        assert_ne!(k1.token("alice"), k2.token("alice"));
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert!(k1.check(&h, "alice", &k1.token("alice")).is_ok());
        assert!(k1.check(&h, "alice", &k1.token("bob")).is_err());
        assert!(k1.check(&h, "alice", "").is_err());
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(k1.check(&h, "alice", &k1.token("alice")).is_ok());
        for foreign in ["https://evil.example", "null", "http://127.0.0.1:8081"] {
            h.insert("origin", foreign.parse().unwrap());
            assert!(k1.check(&h, "alice", &k1.token("alice")).is_err(), "{foreign}");
        }
        // Behind proxies: the first X-Forwarded-Host is the origin's host.
        h.insert("x-forwarded-host", "swamp.example, 10.0.0.5:8080".parse().unwrap());
        h.insert("origin", "https://swamp.example".parse().unwrap());
        assert!(k1.check(&h, "alice", &k1.token("alice")).is_ok());
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(k1.check(&h, "alice", &k1.token("alice")).is_err());
    }
}
