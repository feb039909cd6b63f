//! The administrator's settings for the UDF: which launchviewer runs, and the agent-monitor,
//! launcher secret and database credentials it uses. A file, because the SQL caller must
//! not choose any of them; read at every call.
//!
//! Path: `$VRUN_UDF_CONFIG` (in the database server's environment), else
//! [`DEFAULT_PATH`]. The file names only paths and an address: the secrets stay in their
//! own 0600 files owned by the database's user.

use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/vrun/launchviewer-udf.toml";

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The launchviewer binary.
    #[serde(default = "default_program")]
    pub launchviewer: PathBuf,
    /// agent-monitor's XML-RPC endpoint.
    pub agent_monitor: String,
    /// The launcher secret of the database's user (a copy, 0600, owned by that user).
    pub secret_file: PathBuf,
    /// launchviewer's database credentials for the `viewer_instance` row (0600).
    pub db_config: PathBuf,
    /// How long one call may take before the launcher is killed and an ERROR returned.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How long launchviewer's background process may take to finish a View
    /// (`--background-wait`; launchviewer's default when unset).
    #[serde(default)]
    pub background_wait_secs: Option<u64>,
}

fn default_program() -> PathBuf {
    PathBuf::from("/usr/local/bin/launchviewer")
}

fn default_timeout() -> u64 {
    60
}

impl Config {
    pub fn load() -> Result<Config, String> {
        let path = std::env::var_os("VRUN_UDF_CONFIG").map(PathBuf::from).unwrap_or_else(|| DEFAULT_PATH.into());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if !c.launchviewer.is_absolute() {
            return Err("launchviewer must be an absolute path".into());
        }
        if c.timeout_secs == 0 || c.timeout_secs > 3600 {
            return Err("timeout_secs must be 1..=3600".into());
        }
        Ok(c)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c =
            Config::parse("agent_monitor = \"http://127.0.0.1:8085/RPC2\"\nsecret_file = \"/s\"\ndb_config = \"/d\"\n")
                .unwrap();
        assert_eq!((c.launchviewer.to_str(), c.timeout_secs), (Some("/usr/local/bin/launchviewer"), 60));
        assert!(Config::parse(
            "agent_monitor = \"x\"\nsecret_file = \"/s\"\ndb_config = \"/d\"\nlaunchviewer = \"lv\"\n"
        )
        .is_err());
        assert!(
            Config::parse("agent_monitor = \"x\"\nsecret_file = \"/s\"\ndb_config = \"/d\"\nshell = \"sh\"\n").is_err()
        );
    }
}
