//! A real MariaDB (Debian's mariadb-server) for the SWAMP drop-in tests, started by
//! scripts/lib/mariadb.sh in a temporary directory on a Unix socket, as the mysql user,
//! with sql/mariadb/ loaded and the vrun_launchviewer UDF (target/<profile>/libvrun_udf.so,
//! built by `cargo build --workspace`) in its plugin directory.
//!
//! The UDF runs launchviewer as mysql, so everything it reads is given to mysql: the UDF's
//! configuration, a copy of the launcher secret and the database credentials (0600), the
//! results files (0644). Dropping a [`Db`] stops the server by PID and ends the background
//! launchviewers its calls left (found by this database's directory in their arguments).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vrun_test_support::workspace_bin;

/// SWAMP's viewer version UUID of CodeDX.
pub const CODEDX: &str = "5d0fb63c-865a-11e3-88bb-001a4a81450b";

fn lib() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/mariadb.sh").to_str().unwrap().to_owned()
}

fn mysql_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id").args([flag, "mysql"]).output().expect("id mysql");
        String::from_utf8_lossy(&o.stdout).trim().parse().expect("the mysql user exists (mariadb-server)")
    };
    (id("-u"), id("-g"))
}

/// Writes `content` to `path` as mysql's, mode `mode`.
fn give_mysql(path: &Path, content: &[u8], mode: u32) {
    std::fs::write(path, content).unwrap();
    let (uid, gid) = mysql_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `'…'` with SQL escapes, for values the tests put into statements.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

pub struct Db {
    dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
}

/// What `CALL launch_viewer(…)` answered.
#[derive(Debug)]
pub struct Call {
    pub return_string: String,
    pub return_url: String,
    pub instance: String,
    pub took: Duration,
}

impl Db {
    /// A server whose UDF runs this test's launchviewer against `agent_monitor`.
    pub fn start(agent_monitor: &str, launcher_secret: &Path) -> Db {
        let dir = tempfile::Builder::new().prefix("vrun-mariadb-").tempdir().unwrap();
        let root = dir.path().to_owned();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::create_dir(root.join("results")).unwrap();
        std::fs::set_permissions(root.join("results"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = Db { dir: Some(dir), root };
        db.point_at(agent_monitor, launcher_secret);
        let password = hex(&random16());
        let conf = format!(
            "socket = {:?}\nuser = \"vrun_launcher\"\npassword = \"{password}\"\ndatabase = \"vrun\"\n",
            db.socket().to_str().unwrap()
        );
        give_mysql(&db.root.join("db.toml"), conf.as_bytes(), 0o600);
        let script = format!(
            "source {lib} && vrun_mariadb_start {d} && vrun_mariadb_install_vrun {d} {so} vrun",
            lib = lib(),
            d = db.root.display(),
            so = workspace_bin("libvrun_udf.so").display()
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("VRUN_UDF_CONFIG", db.root.join("udf.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "starting MariaDB failed: {}", String::from_utf8_lossy(&out.stderr));
        // launchviewer's own account: it reads and updates viewer_instance, nothing else.
        db.sql(&format!(
            "CREATE USER 'vrun_launcher'@'localhost' IDENTIFIED BY {pw}; \
             GRANT SELECT, UPDATE ON vrun.viewer_instance TO 'vrun_launcher'@'localhost';",
            pw = q(&password)
        ));
        db
    }

    /// Stops the server and starts it again on the same data (its UDF keeps its configuration).
    pub fn restart(&self) {
        self.server("vrun_mariadb_stop {d} && vrun_mariadb_start {d}");
    }

    pub fn stop_server(&self) {
        self.server("vrun_mariadb_stop {d}");
    }

    pub fn start_server(&self) {
        self.server("vrun_mariadb_start {d}");
    }

    /// Runs scripts/lib's MariaDB functions on this server (`{d}`: its directory).
    fn server(&self, steps: &str) {
        let script = format!("source {} && {}", lib(), steps.replace("{d}", &self.root.display().to_string()));
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("VRUN_UDF_CONFIG", self.root.join("udf.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{steps} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("run/mysqld.sock")
    }

    /// (Re)writes the UDF's configuration (read at every call) for `agent_monitor`.
    pub fn point_at(&self, agent_monitor: &str, launcher_secret: &Path) {
        give_mysql(&self.root.join("launcher.secret"), &std::fs::read(launcher_secret).unwrap(), 0o600);
        let cfg = format!(
            "launchviewer = {:?}\nagent_monitor = {agent_monitor:?}\nsecret_file = {:?}\ndb_config = {:?}\n\
             timeout_secs = 60\nbackground_wait_secs = 120\n",
            env!("CARGO_BIN_EXE_launchviewer"),
            self.root.join("launcher.secret").to_str().unwrap(),
            self.root.join("db.toml").to_str().unwrap()
        );
        give_mysql(&self.root.join("udf.toml"), cfg.as_bytes(), 0o600);
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args(["--no-defaults", "--protocol=socket", "-uroot", "-N", "-B", "vrun"])
            .arg(format!("--socket={}", self.socket().display()))
            .stdin(Stdio::null());
        c
    }

    /// Runs statements as root; the output rows, tab-separated.
    pub fn sql(&self, statements: &str) -> String {
        let out = self.client().arg("-e").arg(statements).output().unwrap();
        assert!(out.status.success(), "{statements}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A results file readable by the database's user.
    pub fn results_file(&self, name: &str, content: &[u8]) -> String {
        let p = self.root.join("results").join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// An assessment result of `project` (package NULL when `None`).
    pub fn result(&self, uuid: &str, project: &str, file: &str, package: Option<&str>) {
        self.sql(&format!(
            "INSERT INTO assessment_result VALUES ({}, {}, {}, {}, 'cppcheck', NULL, 'C/C++')",
            q(uuid),
            q(project),
            q(file),
            package.map(q).unwrap_or_else(|| "NULL".into())
        ));
    }

    /// The statement of one CALL (and the SELECT of its OUT parameters).
    pub fn call_sql(results: &str, user: &str, project: &str) -> String {
        format!(
            "CALL launch_viewer({}, {}, {}, {}, @url, @rs, @vi); SELECT @rs, IFNULL(@url, ''), IFNULL(@vi, '');",
            q(results),
            q(user),
            q(CODEDX),
            q(project)
        )
    }

    pub fn call_cmd(&self, results: &str, user: &str, project: &str) -> Command {
        let mut c = self.client();
        c.arg("-e").arg(Db::call_sql(results, user, project)).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    pub fn call(&self, results: &str, user: &str, project: &str) -> Call {
        let t0 = Instant::now();
        let out = self.call_cmd(results, user, project).output().unwrap();
        Call::parse(out, t0.elapsed())
    }

    /// (status, status_code, vm_ip_address, proxy_url) of the pair's row.
    pub fn row(&self, project: &str) -> Option<(String, String, String, String)> {
        let out = self.sql(&format!(
            "SELECT status, IFNULL(status_code, 'NULL'), IFNULL(vm_ip_address, 'NULL'), IFNULL(proxy_url, 'NULL') \
             FROM viewer_instance WHERE project_uuid = {} AND viewer_version_uuid = {}",
            q(project),
            q(CODEDX)
        ));
        let line = out.lines().next()?;
        let f: Vec<&str> = line.split('\t').collect();
        Some((f[0].into(), f[1].into(), f[2].into(), f[3].into()))
    }

    /// Waits (up to 120 s) until the pair's row status starts with `prefix`; returns the row.
    pub fn wait_row(&self, project: &str, prefix: &str) -> (String, String, String, String) {
        self.wait_row_within(project, prefix, Duration::from_secs(120))
    }

    pub fn wait_row_within(&self, project: &str, prefix: &str, within: Duration) -> (String, String, String, String) {
        let end = Instant::now() + within;
        loop {
            let row = self.row(project);
            if let Some(r) = &row {
                if r.0.starts_with(prefix) {
                    return r.clone();
                }
            }
            assert!(Instant::now() < end, "the row of {project} never said {prefix:?}: {row:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// PIDs of background launchviewers started through this database.
    pub fn finishers(&self) -> Vec<i32> {
        let needle = self.root.join("db.toml").to_str().unwrap().to_owned();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            if text.contains(&needle) && text.contains("--finish-detached") {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits (bounded) until no background launchviewer of this database is left.
    pub fn wait_finishers_gone(&self) {
        let end = Instant::now() + Duration::from_secs(60);
        while !self.finishers().is_empty() {
            assert!(Instant::now() < end, "background launchviewers still running: {:?}", self.finishers());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        for pid in self.finishers() {
            // SAFETY: kill(2) of a background launchviewer this test's database started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("bash")
            .args(["-c", &format!("source {} && vrun_mariadb_stop {}", lib(), self.root.display())])
            .status();
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

impl Call {
    fn parse(out: Output, took: Duration) -> Call {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "CALL failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let f: Vec<String> = stdout.trim_end_matches('\n').split('\t').map(str::to_owned).collect();
        assert_eq!(f.len(), 3, "{stdout:?}");
        Call { return_string: f[0].clone(), return_url: f[1].clone(), instance: f[2].clone(), took }
    }

    pub fn from_output(out: Output, took: Duration) -> Call {
        Call::parse(out, took)
    }
}

fn random16() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A SCARF file of `tool` with `n` findings, each message naming `tag` and its number.
pub fn scarf(tool: &str, tag: &str, n: usize) -> Vec<u8> {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<AnalyzerReport tool_name=\"{tool}\" tool_version=\"1.0\" uuid=\"0f8b8d7e-3c1a-4e5b-9a6d-2b7c8e9f0a1b\">\n"
    );
    for i in 1..=n {
        s.push_str(&format!(
            "<BugInstance id=\"{i}\"><BugLocations><Location id=\"1\" primary=\"true\"><SourceFile>src/{tag}.c</SourceFile><StartLine>{i}</StartLine></Location></BugLocations><BugMessage>{tag} finding {i}</BugMessage><BugGroup>error</BugGroup><BugCode>{tag}{i}</BugCode></BugInstance>\n"
        ));
    }
    s.push_str("</AnalyzerReport>\n");
    s.into_bytes()
}
