//! Configuration: the `run.json` a viewer VM is started with, and the runtime [`Config`].
//!
//! `run.json` is written by vruntask and read by `viewer serve`/`viewer check`. It is data,
//! never shell, but it still crosses a trust boundary (it names things that end up in
//! paths, HTML and SQL), so every field is checked here, once, and unknown fields are
//! refused so a typo cannot silently drop a setting.

use std::path::{Path, PathBuf};

/// Why a configuration was refused. `viewer check` prints the message as its one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

/// `run.json` exactly as vruntask writes it (the shape is part of the wire protocol).
pub use vrun_proto::job::RunJson;

/// Reads and validates a `run.json` file.
pub fn load_run_json(path: &Path) -> Result<RunJson, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let run: RunJson =
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
    validate_run_json(&run)?;
    Ok(run)
}

/// Checks every field of a `run.json`; the first problem found is returned.
pub fn validate_run_json(run: &RunJson) -> Result<(), ConfigError> {
    validate_name("project", &run.project)?;
    validate_name("viewer", &run.viewer)?;
    validate_users(&run.users)?;
    validate_apikey(&run.apikey)?;
    validate_urluuid(&run.urluuid)?;
    if run.port == 0 {
        return Err(invalid("port", "must be 1-65535"));
    }
    Ok(())
}

/// The context path every URL of this viewer lives under: `/` + urluuid.
pub fn context_of(run: &RunJson) -> String {
    format!("/{}", run.urluuid)
}

/// Limits that keep one upload from exhausting the VM. Documented in docs/viewer.md.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted `POST .../analysis` request body, all parts together.
    pub max_upload_bytes: usize,
    /// Most findings one import job may bring in (all files together).
    pub max_findings: u64,
    /// Deepest element nesting accepted in SCARF XML.
    pub max_xml_depth: usize,
    /// Longer messages, paths and rule names are cut to this many bytes.
    pub max_field_bytes: usize,
    /// Most locations kept per finding; further ones are dropped.
    pub max_locations: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_upload_bytes: 64 * 1024 * 1024,
            max_findings: 500_000,
            max_xml_depth: 64,
            max_field_bytes: 16 * 1024,
            max_locations: 64,
        }
    }
}

/// Everything a running server needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SWAMP project this viewer belongs to (shown in page titles).
    pub project: String,
    /// Users allowed to see the pages.
    pub users: Vec<String>,
    /// The system API key (`API-Key:` / `Authorization: System-Key`).
    pub apikey: String,
    /// Context path without a trailing slash: `/proxy-<uuid>`, or empty for the root.
    pub context: String,
    /// Directory holding the database and upload scratch space.
    pub data_dir: PathBuf,
    pub limits: Limits,
}

impl Config {
    /// Builds the runtime configuration from a validated `run.json`.
    pub fn from_run_json(run: &RunJson, data_dir: PathBuf) -> Config {
        Config {
            project: run.project.clone(),
            users: run.users.clone(),
            apikey: run.apikey.clone(),
            context: context_of(run),
            data_dir,
            limits: Limits::default(),
        }
    }

    /// Checks a configuration assembled from command-line flags.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name("project", &self.project)?;
        validate_users(&self.users)?;
        validate_apikey(&self.apikey)?;
        validate_context(&self.context)
    }
}

/// A project, viewer, user or package name: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`, no `..`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    check_name(name).map_err(|reason| invalid(field, format!("{reason} (got {name:?})")))
}

/// The same rule as [`validate_name`], with the reason as plain text (used by the API too).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return Err("must not be empty");
    };
    if bytes.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return Err("must start with a letter or digit");
    }
    if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b)) {
        return Err("may contain only letters, digits, '_', '.' and '-'");
    }
    if name.contains("..") {
        return Err("must not contain '..'");
    }
    Ok(())
}

fn validate_users(users: &[String]) -> Result<(), ConfigError> {
    if users.is_empty() {
        return Err(invalid("users", "at least one user is required"));
    }
    users.iter().try_for_each(|u| validate_name("users", u))
}

fn validate_apikey(key: &str) -> Result<(), ConfigError> {
    if !(32..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("apikey", "must be 32-128 hexadecimal characters"));
    }
    Ok(())
}

/// `proxy-` followed by a 36-character lower-case UUID (`[0-9a-f-]`).
fn validate_urluuid(u: &str) -> Result<(), ConfigError> {
    let ok = u.strip_prefix("proxy-").is_some_and(|rest| {
        rest.len() == 36 && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
    });
    if !ok {
        return Err(invalid("urluuid", format!("must look like proxy-<uuid> (got {u:?})")));
    }
    Ok(())
}

/// A context path from `--context`: empty, or `/` plus a name-like segment.
fn validate_context(ctx: &str) -> Result<(), ConfigError> {
    if ctx.is_empty() {
        return Ok(());
    }
    match ctx.strip_prefix('/') {
        Some(seg) if check_name(seg).is_ok() => Ok(()),
        _ => Err(invalid("context", format!("must be '/' plus one name segment (got {ctx:?})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunJson {
        serde_json::from_str(
            r#"{"project":"myproj","viewer":"CodeDX","users":["alice","bob"],
               "apikey":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
               "urluuid":"proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b","port":8080}"#,
        )
        .unwrap()
    }

    #[test]
    fn sample_is_valid_and_context_is_slash_urluuid() {
        let run = sample();
        validate_run_json(&run).unwrap();
        assert_eq!(context_of(&run), "/proxy-0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b");
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = serde_json::from_str::<RunJson>(
            r#"{"project":"p","viewer":"v","users":["a"],"apikey":"x","urluuid":"u","port":1,"extra":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Spoil = fn(&mut RunJson);
        let cases: [(&str, Spoil); 6] = [
            ("project", |r| r.project = "../etc".into()),
            ("viewer", |r| r.viewer = "a b".into()),
            ("users", |r| r.users.clear()),
            ("users", |r| r.users.push("bad user".into())),
            ("apikey", |r| r.apikey = "xyz".into()),
            ("urluuid", |r| r.urluuid = "proxy-ZZ".into()),
        ];
        for (field, spoil) in cases {
            let mut run = sample();
            spoil(&mut run);
            match validate_run_json(&run) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field} to be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn names() {
        assert!(check_name("a.b-c_d9").is_ok());
        assert!(check_name("a..b").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("ü").is_err());
    }
}
