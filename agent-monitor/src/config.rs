//! Settings for `agent-monitor serve`: flags, environment variables (`AGENT_MONITOR_*`) and
//! an optional TOML file (`--config`), in that order of precedence, over built-in defaults.
//! No file is needed: the defaults run a daemon on `127.0.0.1:8085` with state in
//! `./var/agent-monitor`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Every setting, each optional so that flags, environment and file can be layered.
/// The same struct is the TOML file's schema (unknown keys are refused).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings (keys as the flag names, with `_`).
    #[arg(long, env = "AGENT_MONITOR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// State directory: database, job files, archives, lock. [default: ./var/agent-monitor]
    #[arg(long, env = "AGENT_MONITOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Address to serve XML-RPC on. [default: 127.0.0.1:8085]
    #[arg(long, env = "AGENT_MONITOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// URL jobs use to reach this daemon. [default: http://<listen>/RPC2]
    #[arg(long, env = "AGENT_MONITOR_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds without a heartbeat after which a job loses its lease. [default: 30]
    #[arg(long, env = "AGENT_MONITOR_LEASE_SECS")]
    pub lease_secs: Option<u64>,
    /// How often jobs heartbeat, written into each job. [default: 5]
    #[arg(long, env = "AGENT_MONITOR_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// Seconds a new job has to send its first heartbeat. [default: 60]
    #[arg(long, env = "AGENT_MONITOR_START_GRACE_SECS")]
    pub start_grace_secs: Option<u64>,
    /// Milliseconds between reaper passes. [default: lease/4, at most 5000]
    #[arg(long, env = "AGENT_MONITOR_REAP_EVERY_MS")]
    pub reap_every_ms: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL when cancelling a job. [default: 30]
    #[arg(long, env = "AGENT_MONITOR_CANCEL_GRACE_SECS")]
    pub cancel_grace_secs: Option<u64>,
    /// Job command, run as `<job_command> run <job file>`. [default: vruntask beside this binary, else on PATH]
    #[arg(long, env = "AGENT_MONITOR_JOB_COMMAND")]
    pub job_command: Option<PathBuf>,
    /// Viewer VM image (directory with vmlinuz + initrd.img). [default: /var/lib/vrun/viewer-image]
    #[arg(long, env = "AGENT_MONITOR_PLATFORM")]
    pub platform: Option<String>,
    /// Memory of a viewer VM in MiB. [default: 512]
    #[arg(long, env = "AGENT_MONITOR_MEMORY_MIB")]
    pub memory_mib: Option<u32>,
    /// vCPUs of a viewer VM. [default: 1]
    #[arg(long, env = "AGENT_MONITOR_VCPUS")]
    pub vcpus: Option<u32>,
    /// Largest accepted request body in bytes. [default: 67108864]
    #[arg(long, env = "AGENT_MONITOR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// libvirt URI of the hypervisor inventory, or `none`. [default: qemu:///system]
    #[arg(long, env = "AGENT_MONITOR_LIBVIRT_URI")]
    pub libvirt_uri: Option<String>,
    /// Stored viewer database versions kept per pair. [default: 3]
    #[arg(long, env = "AGENT_MONITOR_ARCHIVES_KEEP")]
    pub archives_keep: Option<usize>,
}

macro_rules! layer {
    ($top:expr, $file:expr, $($f:ident),*) => { $( if $top.$f.is_none() { $top.$f = $file.$f.clone(); } )* };
}

/// Settings with every value decided.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub start_grace: Duration,
    pub reap_every: Duration,
    pub cancel_grace: Duration,
    pub job_command: PathBuf,
    pub platform: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub max_body_bytes: usize,
    pub archives_keep: usize,
    pub libvirt_uri: String,
}

impl Settings {
    /// Layers the config file (if any) under flags and environment, then fills defaults.
    pub fn resolve(mut self) -> anyhow::Result<Resolved> {
        if let Some(path) = self.config.clone() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
            let file: Settings =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?;
            layer!(self, file, state_dir, listen, public_url, lease_secs, heartbeat_secs, start_grace_secs,
                   reap_every_ms, cancel_grace_secs, job_command, platform, memory_mib, vcpus, max_body_bytes,
                   archives_keep, libvirt_uri);
        }
        let lease = Duration::from_secs(self.lease_secs.unwrap_or(30).max(1));
        let heartbeat = Duration::from_secs(self.heartbeat_secs.unwrap_or(5).max(1));
        if heartbeat >= lease {
            anyhow::bail!("heartbeat_secs ({}) must be shorter than lease_secs ({})", heartbeat.as_secs(), lease.as_secs());
        }
        let reap_default = (lease / 4).min(Duration::from_secs(5));
        Ok(Resolved {
            state_dir: self.state_dir.unwrap_or_else(|| PathBuf::from("var/agent-monitor")),
            listen: self.listen.unwrap_or_else(|| "127.0.0.1:8085".parse().expect("valid default")),
            public_url: self.public_url,
            lease,
            heartbeat,
            start_grace: Duration::from_secs(self.start_grace_secs.unwrap_or(60)),
            reap_every: self.reap_every_ms.map(Duration::from_millis).unwrap_or(reap_default).max(Duration::from_millis(50)),
            cancel_grace: Duration::from_secs(self.cancel_grace_secs.unwrap_or(30)),
            job_command: self.job_command.unwrap_or_else(default_job_command),
            platform: self.platform.unwrap_or_else(|| "/var/lib/vrun/viewer-image".into()),
            memory_mib: self.memory_mib.unwrap_or(512),
            vcpus: self.vcpus.unwrap_or(1),
            max_body_bytes: self.max_body_bytes.unwrap_or(64 << 20),
            archives_keep: self.archives_keep.unwrap_or(3).max(1),
            libvirt_uri: self.libvirt_uri.unwrap_or_else(|| "qemu:///system".into()),
        })
    }
}

/// `vruntask` next to this executable (a cargo build or an install puts them together),
/// otherwise whatever `vruntask` is on PATH.
fn default_job_command() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("vruntask")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("vruntask"))
}

impl Resolved {
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("agent-monitor.sqlite3")
    }

    pub fn sub(&self, name: &str) -> PathBuf {
        Path::new(&self.state_dir).join(name)
    }
}
