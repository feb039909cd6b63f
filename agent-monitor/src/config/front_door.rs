//! The front door's settings resolved from flags, environment and file (`front_door_*`,
//! documented in docs/operations.md) into [`crate::frontdoor::Settings`].

use std::time::Duration;

use super::Settings as Source;
use crate::edge::EdgeLimits;
use crate::frontdoor::Settings;

/// `None` without `front_door_listen`.
pub fn resolve(s: &Source, shutdown_grace_secs: u64) -> anyhow::Result<Option<Settings>> {
    let Some(listen) = s.front_door_listen else {
        return Ok(None);
    };
    let tls = match (&s.front_door_tls_cert, &s.front_door_tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => anyhow::bail!("front_door_tls_cert and front_door_tls_key go together"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = s.front_door_url.clone().unwrap_or_else(|| format!("{scheme}://{listen}"));
    let url = url.trim_end_matches('/').to_owned();
    let https = url.starts_with("https://");
    if !(https || url.starts_with("http://")) || url.contains(['?', '#', ' ']) {
        anyhow::bail!("front_door_url must be http(s)://host[:port], not {url:?}");
    }
    let header = s.front_door_user_header.as_deref().unwrap_or("X-Vrun-User");
    let user_header = http::HeaderName::try_from(header)
        .map_err(|_| anyhow::anyhow!("front_door_user_header {header:?} is not a header name"))?;
    let max = s.front_door_max_connections.unwrap_or(256).min(super::descriptor_budget()).max(2);
    Ok(Some(Settings {
        listen,
        url,
        trusted_peers: s.front_door_trusted_peers.clone().unwrap_or_default(),
        user_header,
        secure_cookie: s.front_door_secure_cookie.unwrap_or(https),
        tls,
        login_ttl: Duration::from_secs(s.front_door_login_ttl_secs.unwrap_or(300).max(1)),
        session_ttl: Duration::from_secs(s.front_door_session_ttl_secs.unwrap_or(8 * 3600).max(60)),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(s.front_door_request_timeout_secs.unwrap_or(300).max(1)),
        edge: EdgeLimits {
            header_timeout: Duration::from_secs(s.header_timeout_secs.unwrap_or(10).max(1)),
            max_connections: max,
            max_per_peer: (max / 2).max(1),
            shutdown_grace: Duration::from_secs(shutdown_grace_secs),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Source)) -> anyhow::Result<Option<Settings>> {
        let mut s = Source::default();
        f(&mut s);
        resolve(&s, 10)
    }

    #[test]
    fn defaults_follow_the_listener_and_tls() {
        assert!(with(|_| {}).unwrap().is_none(), "no listener, no front door");
        let plain = with(|s| s.front_door_listen = Some("127.0.0.1:9".parse().unwrap())).unwrap().unwrap();
        assert_eq!((plain.url.as_str(), plain.secure_cookie), ("http://127.0.0.1:9", false));
        let tls = with(|s| {
            s.front_door_listen = Some("127.0.0.1:9".parse().unwrap());
            s.front_door_tls_cert = Some("c.pem".into());
            s.front_door_tls_key = Some("k.pem".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!((tls.url.as_str(), tls.secure_cookie), ("https://127.0.0.1:9", true));
        let proxied = with(|s| {
            s.front_door_listen = Some("127.0.0.1:9".parse().unwrap());
            s.front_door_url = Some("https://viewers.example.org/".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!((proxied.url.as_str(), proxied.secure_cookie), ("https://viewers.example.org", true));
    }

    #[test]
    fn bad_settings_are_refused() {
        let listen = |s: &mut Source| s.front_door_listen = Some("127.0.0.1:9".parse().unwrap());
        assert!(with(|s| {
            listen(s);
            s.front_door_tls_cert = Some("c.pem".into());
        })
        .is_err());
        assert!(with(|s| {
            listen(s);
            s.front_door_url = Some("ftp://x".into());
        })
        .is_err());
        assert!(with(|s| {
            listen(s);
            s.front_door_user_header = Some("bad header".into());
        })
        .is_err());
    }
}
