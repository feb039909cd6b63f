//! Who may call what.
//!
//! Four roles. `admin` may call everything. `launcher` (what a click runs) may launch, ask
//! and push. `metrics` (a scraper) may read `/metrics` and nothing else. `node` (each
//! hypervisor node's DomainMonitor) may report its node's domains and hand over what it
//! salvaged, nothing else. A job may report only for its own pair and generation: its token is an HMAC of
//! `project.viewer.generation` under a key only agent-monitor knows, so it needs no storage
//! and cannot be forged or reused for another pair.
//!
//! Credentials come as HTTP Basic (`admin:<secret>`, `launcher:<secret>`, `node:<secret>`,
//! `job:<token>`; what
//! Python's and Perl's XML-RPC clients send for `http://user:secret@host/RPC2`) or as
//! `Authorization: Bearer <secret or token>`. The secrets are created at first start from
//! the OS CSPRNG in `<state>/secrets/` (directory 0700, files 0600) and are never logged.

use std::path::{Path, PathBuf};

use base64::Engine;
use dxr::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use vrun_proto::methods as m;
use vrun_proto::{FaultCode, Pair, RpcError};

use crate::private::{random_hex, write_private_atomic};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Launcher,
    Metrics,
    /// A hypervisor node's DomainMonitor (which node is in each call, and checked there).
    Node,
    Job {
        pair: Pair,
        generation: i64,
    },
}

/// The roles' secrets and the job key, replaceable while the daemon runs
/// ([`Secrets::rotate`], [`Secrets::reload`]); readers take a read lock for one comparison.
pub struct Secrets {
    /// `<state>/secrets`; `None` for a set made in memory (unit tests).
    dir: Option<PathBuf>,
    keys: std::sync::RwLock<Keys>,
}

struct Keys {
    admin: String,
    launcher: String,
    metrics: String,
    node: String,
    job_key: Vec<u8>,
    /// The job key before the last rotation and when it stops being accepted (ms): running
    /// jobs hold tokens minted under it.
    previous_job_key: Option<(Vec<u8>, i64)>,
    /// The exact `Authorization` values the admin and launcher clients send, so that the
    /// usual case is one constant-time comparison, not a base64 decode per call.
    admin_basic: String,
    launcher_basic: String,
}

impl Keys {
    fn new(admin: String, launcher: String, metrics: String, node: String, job_key: Vec<u8>) -> Keys {
        Keys {
            node,
            admin_basic: basic("admin", &admin),
            launcher_basic: basic("launcher", &launcher),
            admin,
            launcher,
            metrics,
            job_key,
            previous_job_key: None,
        }
    }
}

fn basic(user: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
}

/// Never prints a secret, so a stray `{:?}` cannot leak one into a log.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// Why the secrets cannot be used; the daemon refuses to start with this one line.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("secret {path} is {why}; fix or remove it (a removed secret is created anew at start)")]
    Invalid { path: PathBuf, why: &'static str },
    #[error("cannot create secret {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
}

/// Reads a secret, creating it only when the file does not exist. Any other failure refuses:
/// regenerating on a read error silently replaced a `jobs.key` with one bad byte, and every
/// running job's calls were refused from then on (issue 13).
pub(crate) fn load_or_create(path: &Path) -> Result<String, SecretError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let create = |source| SecretError::Create { path: path.to_path_buf(), source };
            let s = random_hex(32).map_err(create)?;
            write_private_atomic(path, format!("{s}\n").as_bytes()).map_err(create)?;
            return Ok(s);
        }
        Err(source) => return Err(SecretError::Read { path: path.to_path_buf(), source }),
    };
    let invalid = |why| SecretError::Invalid { path: path.to_path_buf(), why };
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8"))?;
    let secret = text.trim();
    if secret.len() < 32 {
        return Err(invalid("shorter than 32 characters"));
    }
    Ok(secret.to_string())
}

/// Where a role's secret lives (clients read it from here).
pub fn secret_path(state_dir: &Path, role: &str) -> PathBuf {
    state_dir.join("secrets").join(format!("{role}.secret"))
}

/// The roles whose secrets [`Secrets::rotate`] replaces; `jobs` is the job key.
pub const ROLES: [&str; 5] = ["admin", "launcher", "metrics", "node", "jobs"];

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Reads every file of `dir` (creating what is missing) into a key set.
fn read_keys(dir: &Path) -> Result<Keys, SecretError> {
    let key_path = dir.join("jobs.key");
    let key = hex::decode(load_or_create(&key_path)?)
        .map_err(|_| SecretError::Invalid { path: key_path, why: "not hexadecimal" })?;
    let role = |r: &str| load_or_create(&dir.join(format!("{r}.secret")));
    let mut keys = Keys::new(role("admin")?, role("launcher")?, role("metrics")?, role("node")?, key);
    keys.previous_job_key = read_previous(dir);
    Ok(keys)
}

/// `jobs.key.previous`: `<hex key> <accepted until, ms>`, if it is still within its grace.
fn read_previous(dir: &Path) -> Option<(Vec<u8>, i64)> {
    let text = std::fs::read_to_string(dir.join("jobs.key.previous")).ok()?;
    let (key, until) = text.trim().split_once(' ')?;
    let until: i64 = until.parse().ok()?;
    (until > now_ms()).then_some((hex::decode(key).ok()?, until))
}

impl Secrets {
    pub fn load_or_create(state_dir: &Path) -> Result<Secrets, SecretError> {
        let dir = state_dir.join("secrets");
        crate::modes::private_dir(&dir).map_err(|source| SecretError::Create { path: dir.clone(), source })?;
        let keys = read_keys(&dir)?;
        Ok(Secrets { dir: Some(dir), keys: std::sync::RwLock::new(keys) })
    }

    #[cfg(test)]
    fn new(admin: String, launcher: String, node: String, job_key: Vec<u8>) -> Secrets {
        // Metrics: a value no caller can present (secrets are at least 32 characters).
        let keys = Keys::new(admin, launcher, String::new(), node, job_key);
        Secrets { dir: None, keys: std::sync::RwLock::new(keys) }
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the secrets of `roles` (names from [`ROLES`]) with fresh ones from the CSPRNG,
    /// written 0600 before they take effect. A role's old secret is refused at once (its
    /// clients read the file again); the old job key stays accepted for `grace`, because
    /// running jobs hold tokens minted under it and cannot be given new ones.
    pub fn rotate(&self, roles: &[&str], grace: std::time::Duration) -> std::io::Result<()> {
        let dir = self.dir.as_ref().ok_or_else(|| std::io::Error::other("secrets kept in memory only"))?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        for role in roles {
            let fresh = random_hex(32)?;
            if *role == "jobs" {
                let until = now_ms() + grace.as_millis() as i64;
                let old = hex::encode(&keys.job_key);
                write_private_atomic(&dir.join("jobs.key.previous"), format!("{old} {until}\n").as_bytes())?;
                write_private_atomic(&dir.join("jobs.key"), format!("{fresh}\n").as_bytes())?;
                let old = std::mem::replace(&mut keys.job_key, hex::decode(&fresh).expect("hex"));
                keys.previous_job_key = Some((old, until));
                continue;
            }
            write_private_atomic(&dir.join(format!("{role}.secret")), format!("{fresh}\n").as_bytes())?;
            match *role {
                "admin" => (keys.admin_basic, keys.admin) = (basic("admin", &fresh), fresh),
                "launcher" => (keys.launcher_basic, keys.launcher) = (basic("launcher", &fresh), fresh),
                "metrics" => keys.metrics = fresh,
                "node" => keys.node = fresh,
                other => return Err(std::io::Error::other(format!("no role {other:?}"))),
            }
        }
        Ok(())
    }

    /// Reads the secret files again (an admin replaced one by hand; SIGHUP). A job key
    /// changed this way keeps the old one accepted for `grace`, as [`Secrets::rotate`] does.
    pub fn reload(&self, grace: std::time::Duration) -> Result<(), SecretError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut fresh = read_keys(dir)?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if fresh.job_key != keys.job_key {
            let until = now_ms() + grace.as_millis() as i64;
            let old = hex::encode(&keys.job_key);
            let _ = write_private_atomic(&dir.join("jobs.key.previous"), format!("{old} {until}\n").as_bytes());
            fresh.previous_job_key = Some((std::mem::take(&mut keys.job_key), until));
        } else if fresh.previous_job_key.is_none() {
            fresh.previous_job_key = keys.previous_job_key.take();
        }
        *keys = fresh;
        Ok(())
    }

    /// The token a job presents: `job.<project>.<viewer>.<generation>.<hmac>`.
    pub fn job_token(&self, pair: &Pair, generation: i64) -> String {
        mint(&self.keys().job_key, pair, generation)
    }

    fn check_job_token(&self, token: &str) -> Option<Caller> {
        let rest = token.strip_prefix("job.")?;
        let mut parts = rest.split('.');
        let (Some(p), Some(v), Some(g), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let pair = Pair::new(p, v).ok()?;
        let generation: i64 = g.parse().ok()?;
        let keys = self.keys();
        let matches = |key: &[u8]| bool::from(mint(key, &pair, generation).as_bytes().ct_eq(token.as_bytes()));
        let ok = matches(&keys.job_key)
            || keys.previous_job_key.as_ref().is_some_and(|(key, until)| *until > now_ms() && matches(key));
        drop(keys);
        ok.then_some(Caller::Job { pair, generation })
    }

    fn check_secret(&self, secret: &str) -> Option<Caller> {
        let keys = self.keys();
        if bool::from(keys.admin.as_bytes().ct_eq(secret.as_bytes())) {
            Some(Caller::Admin)
        } else if bool::from(keys.launcher.as_bytes().ct_eq(secret.as_bytes())) {
            Some(Caller::Launcher)
        } else if !keys.metrics.is_empty() && bool::from(keys.metrics.as_bytes().ct_eq(secret.as_bytes())) {
            Some(Caller::Metrics)
        } else if !keys.node.is_empty() && bool::from(keys.node.as_bytes().ct_eq(secret.as_bytes())) {
            Some(Caller::Node)
        } else {
            None
        }
    }

    /// Identifies the caller from the `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, RpcError> {
        let denied = |why: &str| RpcError::new(FaultCode::NotAuthorised, format!("not authorised: {why}"));
        let header = header.ok_or_else(|| denied("credentials required (HTTP Basic or Bearer)"))?;
        {
            let keys = self.keys();
            if bool::from(header.as_bytes().ct_eq(keys.launcher_basic.as_bytes())) {
                return Ok(Caller::Launcher);
            } else if bool::from(header.as_bytes().ct_eq(keys.admin_basic.as_bytes())) {
                return Ok(Caller::Admin);
            }
        }
        let caller = if let Some(b64) = header.strip_prefix("Basic ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| denied("malformed Basic credentials"))?;
            let raw = String::from_utf8(raw).map_err(|_| denied("malformed Basic credentials"))?;
            let (user, secret) = raw.split_once(':').ok_or_else(|| denied("malformed Basic credentials"))?;
            match user {
                "job" => self.check_job_token(secret),
                "admin" | "launcher" | "metrics" | "node" => self.check_secret(secret).filter(|c| {
                    matches!(
                        (user, c),
                        ("admin", Caller::Admin)
                            | ("launcher", Caller::Launcher)
                            | ("metrics", Caller::Metrics)
                            | ("node", Caller::Node)
                    )
                }),
                _ => None,
            }
        } else if let Some(token) = header.strip_prefix("Bearer ") {
            let token = token.trim();
            if token.starts_with("job.") {
                self.check_job_token(token)
            } else {
                self.check_secret(token)
            }
        } else {
            None
        };
        caller.ok_or_else(|| denied("wrong credentials"))
    }
}

/// Whether `caller` may call `method` with `params`. Jobs may only speak for themselves.
pub fn authorize(caller: &Caller, method: &str, params: &[Value]) -> Result<(), RpcError> {
    let denied = |why: String| RpcError::new(FaultCode::NotAuthorised, format!("not authorised: {why}"));
    match caller {
        Caller::Admin => Ok(()),
        Caller::Launcher => match method {
            m::LAUNCH_VIEWER
            | m::IS_VIEWER_AVAILABLE
            | m::VIEWER_STATUS
            | m::CLAIM_PUSH
            | m::PUSH_DONE
            | m::VIEWER_LOGIN
            | m::LIST_METHODS
            | m::SERVER_VERSION => Ok(()),
            _ => Err(denied(format!("the launcher role may not call {method}"))),
        },
        Caller::Metrics => match method {
            m::LIST_METHODS | m::SERVER_VERSION => Ok(()),
            _ => Err(denied(format!("the metrics role may not call {method}"))),
        },
        Caller::Node => match method {
            m::NODE_INVENTORY | m::NODE_SALVAGED | m::LIST_METHODS | m::SERVER_VERSION => Ok(()),
            _ => Err(denied(format!("the node role may not call {method}"))),
        },
        Caller::Job { pair, generation } => match method {
            m::SET_VIEWER_STATE | m::HEARTBEAT | m::STORE_VIEWER | m::FETCH_JOB | m::FETCH_VIEWER_DB => {
                let Some(Value::Struct(members)) = params.first() else {
                    return Err(denied("a job's call must name its pair and generation".into()));
                };
                // Read exactly as the method's decoder will, so no client's encoding slips by.
                let s = |k: &str| members.get(k).and_then(vrun_proto::value::lenient_str);
                let g = members.get("generation").and_then(vrun_proto::value::lenient_int);
                if s("project").as_deref() == Some(pair.project())
                    && s("viewer").as_deref() == Some(pair.viewer())
                    && g == Some(*generation)
                {
                    Ok(())
                } else {
                    Err(denied(format!("this job may only report for {pair} generation {generation}")))
                }
            }
            m::LIST_METHODS | m::SERVER_VERSION => Ok(()),
            _ => Err(denied(format!("a job may not call {method}"))),
        },
    }
}

/// The HMAC token of `pair`'s `generation` under `key`.
fn mint(key: &[u8], pair: &Pair, generation: i64) -> String {
    let claim = format!("{}.{}.{generation}", pair.project(), pair.viewer());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(claim.as_bytes());
    format!("job.{claim}.{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::new("a".repeat(64), "l".repeat(64), "n".repeat(64), vec![7; 32])
    }

    #[test]
    fn roles_from_credentials() {
        let s = secrets();
        assert_eq!(s.authenticate(Some(&basic("admin", &"a".repeat(64)))).unwrap(), Caller::Admin);
        assert_eq!(s.authenticate(Some(&basic("launcher", &"l".repeat(64)))).unwrap(), Caller::Launcher);
        // Not the exact header the fast path compares with, but the same credentials.
        assert_eq!(
            s.authenticate(Some(&basic("launcher", &"l".repeat(64)).replace("Basic ", "Basic  "))).unwrap(),
            Caller::Launcher
        );
        assert_eq!(s.authenticate(Some(&format!("Bearer {}", "l".repeat(64)))).unwrap(), Caller::Launcher);
        assert!(
            s.authenticate(Some(&basic("launcher", &"a".repeat(64)))).is_err(),
            "admin's secret under the launcher's name"
        );
        assert_eq!(s.authenticate(Some(&basic("node", &"n".repeat(64)))).unwrap(), Caller::Node);
        assert!(s.authenticate(Some(&basic("admin", &"n".repeat(64)))).is_err(), "the node secret is not admin's");
        // The launcher's secret does not make anyone admin.
        assert!(s.authenticate(Some(&basic("admin", &"l".repeat(64)))).is_err());
        assert!(s.authenticate(None).is_err());
        assert!(s.authenticate(Some("Basic !!!")).is_err());
        let p = Pair::new("p", "v").unwrap();
        let t = s.job_token(&p, 3);
        assert_eq!(
            s.authenticate(Some(&format!("Bearer {t}"))).unwrap(),
            Caller::Job { pair: p.clone(), generation: 3 }
        );
        let forged = t.replace(".3.", ".4.");
        assert!(s.authenticate(Some(&format!("Bearer {forged}"))).is_err(), "a token is bound to its generation");
    }

    #[test]
    fn jobs_speak_only_for_themselves() {
        let p = Pair::new("p", "v").unwrap();
        let job = Caller::Job { pair: p.clone(), generation: 3 };
        let params = |proj: &str, g: i32| {
            vec![vrun_proto::value::StructBuilder::new()
                .str("project", proj)
                .str("viewer", "v")
                .int("generation", g.into())
                .build()]
        };
        assert!(authorize(&job, m::HEARTBEAT, &params("p", 3)).is_ok());
        assert!(authorize(&job, m::HEARTBEAT, &params("q", 3)).is_err());
        assert!(authorize(&job, m::SET_VIEWER_STATE, &params("p", 4)).is_err());
        assert!(authorize(&job, m::LAUNCH_VIEWER, &params("p", 3)).is_err());
        assert!(authorize(&job, m::FETCH_JOB, &params("p", 3)).is_ok());
        assert!(authorize(&job, m::FETCH_VIEWER_DB, &params("p", 4)).is_err(), "only its own database");
        assert!(authorize(&Caller::Launcher, m::FETCH_JOB, &params("p", 3)).is_err());
        assert!(authorize(&Caller::Launcher, m::ABORT_VIEWER, &[]).is_err());
        assert!(authorize(&Caller::Launcher, m::LAUNCH_VIEWER, &[]).is_ok());
        assert!(authorize(&Caller::Admin, m::ABORT_VIEWER, &[]).is_ok());
        assert!(authorize(&Caller::Node, m::NODE_INVENTORY, &[]).is_ok());
        assert!(authorize(&Caller::Node, m::NODE_SALVAGED, &[]).is_ok());
        for other in [m::LAUNCH_VIEWER, m::ABORT_VIEWER, m::STORE_VIEWER, m::FETCH_JOB, m::LIST_VIEWERS] {
            assert!(authorize(&Caller::Node, other, &[]).is_err(), "{other}");
        }
        assert!(authorize(&Caller::Launcher, m::NODE_INVENTORY, &[]).is_err());
        assert!(authorize(&job, m::NODE_SALVAGED, &params("p", 3)).is_err());
    }
}
