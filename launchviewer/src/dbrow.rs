//! The SWAMP `viewer_instance` row: where a View's progress and outcome are recorded for the
//! portal, which polls the row (status text, status code, address, proxy URL) until the URL
//! appears.
//!
//! The connection is configured in a file (`--db-config`, env `VRUN_DB_CONFIG`) that holds
//! a password, so it must be 0600: never on the command line, where `ps` shows it. Every
//! statement is parameterised; every connection has read, write and connect timeouts.
//!
//! The texts are SWAMP's. Several launchviewers may write one row at once (twenty clicks on
//! a cold pair leave twenty background processes); the rule that keeps the row from going
//! backwards: "Launching viewer" and "Viewer is up" are always written (a launch means the
//! old URL is gone; an import means the new one is good), "Uploading results" and "Unable
//! to launch viewer" never over "Viewer is up" (another process already put results into a
//! live viewer since the last launch).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql::prelude::Queryable;

/// No statement may hang a View: the database answers in milliseconds when healthy.
const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// SWAMP's numeric viewer states, as the row's `status_code`.
pub const CODE_LAUNCHING: i32 = 1;
pub const CODE_READY: i32 = 2;
pub const CODE_ERROR: i32 = -5;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database config {path}: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("database config {path} is readable by others (mode {mode:o}); it holds a password: chmod 600 it")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database error: {0}")]
    Sql(String),
    #[error("no viewer_instance row {0:?} (the launch_viewer procedure creates it before calling launchviewer)")]
    NoRow(String),
}

impl DbError {
    /// A wrong configuration (retrying will not help), as opposed to a database that is
    /// down or refusing.
    pub fn is_usage(&self) -> bool {
        matches!(self, DbError::Config { .. } | DbError::Exposed { .. } | DbError::NoRow(_))
    }
}

/// The `--db-config` file (TOML): `socket` or `host` (+ `port`), `user`, `password`, `database`.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    pub socket: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: String,
    #[serde(default)]
    pub password: String,
    pub database: String,
}

/// Without the password: a config may end up in a debug line.
impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("socket", &self.socket)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    pub fn load(path: &Path) -> Result<DbConfig, DbError> {
        let bad = |detail: String| DbError::Config { path: path.to_owned(), detail };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DbError::Exposed { path: path.to_owned(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let cfg: DbConfig = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
        if cfg.socket.is_some() == cfg.host.is_some() {
            return Err(bad("set exactly one of socket and host".into()));
        }
        Ok(cfg)
    }

    fn opts(&self) -> mysql::OptsBuilder {
        let b = mysql::OptsBuilder::new()
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .db_name(Some(&self.database))
            .read_timeout(Some(DB_TIMEOUT))
            .write_timeout(Some(DB_TIMEOUT))
            .tcp_connect_timeout(Some(DB_TIMEOUT));
        match (&self.socket, &self.host) {
            (Some(sock), _) => b.socket(Some(sock.to_string_lossy())),
            (None, host) => b.ip_or_hostname(host.clone()).tcp_port(self.port.unwrap_or(3306)).prefer_socket(false),
        }
    }
}

/// What the row says.
#[derive(Debug, Clone, Copy)]
pub enum Status<'a> {
    Launching,
    Uploading,
    /// `url`: the clean findings URL (see [`recorded_url`]); `address`: the viewer's host:port.
    Up {
        url: &'a str,
        address: &'a str,
    },
    Failed(&'a str),
}

/// The URL that goes into the row's `proxy_url`: the clean findings URL, never one that
/// carries a user's login token (the row is read by every portal process). The one place
/// that decides it.
pub fn recorded_url(printed: &str) -> String {
    // The printed link signs its user in through the front door (`?vrun_login=<token>`):
    // that token is the user's alone and single-use, so the row keeps the URL without it.
    let login = format!("{}=", vrun_proto::frontdoor::LOGIN_PARAM);
    let Some((base, query)) = printed.split_once('?') else { return printed.to_owned() };
    let kept: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with(&login)).collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod recorded_url_tests {
    #[test]
    fn the_login_token_never_reaches_the_row() {
        let f = super::recorded_url;
        assert_eq!(f("http://fd:1/proxy-x/projects/2?vrun_login=a.b.c.alice"), "http://fd:1/proxy-x/projects/2");
        assert_eq!(f("http://fd:1/proxy-x/projects/2?x=1&vrun_login=t"), "http://fd:1/proxy-x/projects/2?x=1");
        assert_eq!(f("http://v:2/proxy-x/projects/2"), "http://v:2/proxy-x/projects/2");
    }
}

/// The viewer's `host:port` from a findings URL `http://host:port/proxy-…/projects/N`.
pub fn address_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// One `viewer_instance` row. The background process holds it for minutes: a connection the
/// server dropped meanwhile (a restart, a timeout) is replaced once per write.
pub struct Row {
    cfg: DbConfig,
    conn: Option<mysql::Conn>,
    uuid: String,
}

impl Row {
    /// Connects and checks that the row exists.
    pub fn open(config: &Path, uuid: &str) -> Result<Row, DbError> {
        let cfg = DbConfig::load(config)?;
        let mut row = Row { cfg, conn: None, uuid: uuid.to_owned() };
        let n: Option<u64> = row
            .conn()?
            .exec_first("SELECT COUNT(*) FROM viewer_instance WHERE viewer_instance_uuid = ?", (uuid,))
            .map_err(|e| DbError::Sql(e.to_string()))?;
        if n.unwrap_or(0) == 0 {
            return Err(DbError::NoRow(uuid.to_owned()));
        }
        Ok(row)
    }

    fn conn(&mut self) -> Result<&mut mysql::Conn, DbError> {
        if self.conn.is_none() {
            let c = mysql::Conn::new(self.cfg.opts()).map_err(|e| DbError::Connect(e.to_string()))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Sets the row (see the module's rule), reconnecting once if the connection failed.
    pub fn set(&mut self, status: Status) -> Result<(), DbError> {
        match self.try_set(status) {
            Err(DbError::Sql(_)) | Err(DbError::Connect(_)) => {
                self.conn = None;
                self.try_set(status)
            }
            other => other,
        }
    }

    /// [`Row::set`], tried again every half second for up to `within` while the server
    /// does not take it (down, restarting); a refused statement is not tried again.
    pub fn set_within(&mut self, status: Status, within: Duration) -> Result<(), DbError> {
        let end = std::time::Instant::now() + within;
        loop {
            match self.set(status) {
                Err(DbError::Sql(_) | DbError::Connect(_)) if std::time::Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn try_set(&mut self, status: Status) -> Result<(), DbError> {
        const ALWAYS: &str = "";
        const NOT_OVER_UP: &str = " AND NOT (status_code <=> 2)";
        let (text, code, address, url, guard) = match status {
            Status::Launching => ("Launching viewer".to_owned(), CODE_LAUNCHING, None, None, ALWAYS),
            Status::Uploading => ("Uploading results".to_owned(), CODE_LAUNCHING, None, None, NOT_OVER_UP),
            Status::Up { url, address } => {
                ("Viewer is up".to_owned(), CODE_READY, Some(address.to_owned()), Some(recorded_url(url)), ALWAYS)
            }
            Status::Failed(why) => (format!("Unable to launch viewer: {why}"), CODE_ERROR, None, None, NOT_OVER_UP),
        };
        // The column holds 1000 characters; a longer reason is cut, on a char boundary.
        let text: String = text.chars().take(1000).collect();
        let sql = format!(
            "UPDATE viewer_instance SET status = ?, status_code = ?, vm_ip_address = ?, proxy_url = ?, \
             update_date = NOW() WHERE viewer_instance_uuid = ?{guard}"
        );
        let uuid = self.uuid.clone();
        self.conn()?.exec_drop(sql, (text, code, address, url, uuid)).map_err(|e| DbError::Sql(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_must_be_private_and_name_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db.toml");
        std::fs::write(&p, "socket = \"/s\"\nuser = \"u\"\npassword = \"pw\"\ndatabase = \"d\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(DbConfig::load(&p), Err(DbError::Exposed { mode: 0o644, .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(DbConfig::load(&p).unwrap().socket.unwrap(), Path::new("/s"));
        std::fs::write(&p, "socket = \"/s\"\nhost = \"h\"\nuser = \"u\"\ndatabase = \"d\"\n").unwrap();
        assert!(DbConfig::load(&p).unwrap_err().is_usage());
    }

    #[test]
    fn addresses_from_urls() {
        assert_eq!(address_of("http://127.0.0.1:4000/proxy-x/projects/2"), "127.0.0.1:4000");
    }
}
