//! Settings for `agent-monitor serve`: flags, environment variables (`AGENT_MONITOR_*`) and
//! an optional TOML file (`--config`), in that order of precedence, over built-in defaults.
//! No file is needed: the defaults run a daemon on `127.0.0.1:8085` with state in
//! `./var/agent-monitor`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod front_door;

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
    /// How a local job gets its description: `file` (written into the state directory) or
    /// `fetch` (over XML-RPC with its token, as on a node that shares no filesystem).
    #[arg(long, env = "AGENT_MONITOR_JOB_DELIVERY")]
    pub job_delivery: Option<String>,
    /// `process` (vruntask on this host, the default) or `slurm` (a batch job per viewer);
    /// `record` spawns nothing and only records starts and cancels in
    /// `<state>/jobs/recorded-jobs.log`: for benchmarks and tests, never for viewers.
    #[arg(long, env = "AGENT_MONITOR_LAUNCHER")]
    pub launcher: Option<String>,
    /// Slurm partition of the viewer hypervisors (default: the cluster's default partition).
    #[arg(long, env = "AGENT_MONITOR_SLURM_PARTITION")]
    pub slurm_partition: Option<String>,
    /// Memory a Slurm job asks for beyond the VM's (QEMU and vruntask; default 256).
    #[arg(long, env = "AGENT_MONITOR_SLURM_MEMORY_OVERHEAD_MIB")]
    pub slurm_memory_overhead_mib: Option<u32>,
    /// The job's output on its node, as sbatch's --output (default /tmp/%x.%j.log).
    #[arg(long, env = "AGENT_MONITOR_SLURM_OUTPUT")]
    pub slurm_output: Option<String>,
    /// Deadline of each sbatch/squeue/scancel call (default 10).
    #[arg(long, env = "AGENT_MONITOR_SLURM_TIMEOUT_SECS")]
    pub slurm_timeout_secs: Option<u64>,
    /// Directory of sbatch, squeue and scancel (default: PATH).
    #[arg(long, env = "AGENT_MONITOR_SLURM_BIN_DIR")]
    pub slurm_bin_dir: Option<PathBuf>,
    /// Viewer VM image (directory with vmlinuz + initrd.img). [default: /var/lib/vrun/viewer-image]
    #[arg(long, env = "AGENT_MONITOR_PLATFORM")]
    pub platform: Option<String>,
    /// Memory of a viewer VM in MiB. [default: 512]
    #[arg(long, env = "AGENT_MONITOR_MEMORY_MIB")]
    pub memory_mib: Option<u32>,
    /// vCPUs of a viewer VM. [default: 1]
    #[arg(long, env = "AGENT_MONITOR_VCPUS")]
    pub vcpus: Option<u32>,
    /// Largest accepted `storeviewer` body in bytes. [default: 67108864]
    #[arg(long, env = "AGENT_MONITOR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest body of any call but `storeviewer`, in bytes. [default: 1048576]
    #[arg(long, env = "AGENT_MONITOR_MAX_CALL_BYTES")]
    pub max_call_bytes: Option<usize>,
    /// `storeviewer` calls larger than max_call_bytes read at once; others wait. [default: 2]
    #[arg(long, env = "AGENT_MONITOR_MAX_LARGE_REQUESTS")]
    pub max_large_requests: Option<usize>,
    /// Seconds a connection may take to send a request's headers, or stay idle. [default: 10]
    #[arg(long, env = "AGENT_MONITOR_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a request's body may take to arrive. [default: 60]
    #[arg(long, env = "AGENT_MONITOR_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Open connections at most (also at most half the descriptor limit). [default: 1024]
    #[arg(long, env = "AGENT_MONITOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections at most from one address. [default: 512]
    #[arg(long, env = "AGENT_MONITOR_MAX_CONNECTIONS_PER_PEER")]
    pub max_connections_per_peer: Option<usize>,
    /// Seconds requests in progress get to finish after SIGTERM. [default: 10]
    #[arg(long, env = "AGENT_MONITOR_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// libvirt URI of the hypervisor inventory, or `none`. [default: qemu:///system]
    #[arg(long, env = "AGENT_MONITOR_LIBVIRT_URI")]
    pub libvirt_uri: Option<String>,
    /// Seconds between reconciliation sweeps (libvirt events also trigger one). [default: 30]
    #[arg(long, env = "AGENT_MONITOR_SWEEP_SECS")]
    pub sweep_secs: Option<u64>,
    /// Seconds a vrun domain with no live instance may exist before it is salvaged and destroyed. [default: 60]
    #[arg(long, env = "AGENT_MONITOR_ORPHAN_GRACE_SECS")]
    pub orphan_grace_secs: Option<u64>,
    /// Seconds an orphaned guest gets to save its database after the power button. [default: 60]
    #[arg(long, env = "AGENT_MONITOR_SALVAGE_TIMEOUT_SECS")]
    pub salvage_timeout_secs: Option<u64>,
    /// Seconds an instance may stay launching or booting before it is failed. [default: 600]
    #[arg(long, env = "AGENT_MONITOR_LAUNCH_DEADLINE_SECS")]
    pub launch_deadline_secs: Option<u64>,
    /// Seconds an instance may stay stopping before it is failed. [default: 300]
    #[arg(long, env = "AGENT_MONITOR_STOP_DEADLINE_SECS")]
    pub stop_deadline_secs: Option<u64>,
    /// Seconds without user activity after which a ready viewer is stopped. [default: 3600]
    #[arg(long, env = "AGENT_MONITOR_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds after which a viewer is stopped however busy it is. [default: 28800]
    #[arg(long, env = "AGENT_MONITOR_MAX_LIFETIME_SECS")]
    pub max_lifetime_secs: Option<u64>,
    /// Per viewer type overrides (TOML only): `[viewer.CodeDX] idle_timeout_secs = 1800`.
    #[arg(skip)]
    #[serde(default)]
    pub viewer: std::collections::BTreeMap<String, ViewerLimits>,
    /// Address of the front door, the HTTP listener people's browsers use (docs/frontdoor.md). [default: none, no front door]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_LISTEN")]
    pub front_door_listen: Option<SocketAddr>,
    /// The front door's URL as browsers reach it (scheme://host[:port]). [default: http://<front_door_listen>]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_URL")]
    pub front_door_url: Option<String>,
    /// Certificate chain (PEM) for the front door to speak TLS itself. [default: plain HTTP]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_TLS_CERT")]
    pub front_door_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of that certificate; keep it 0600.
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_TLS_KEY")]
    pub front_door_tls_key: Option<PathBuf>,
    /// Peers (a TLS proxy or portal, comma-separated IPs) whose user header is trusted. [default: none]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_TRUSTED_PEERS", value_delimiter = ',')]
    pub front_door_trusted_peers: Option<Vec<std::net::IpAddr>>,
    /// The header naming the user, from trusted peers only. [default: X-Vrun-User]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_USER_HEADER")]
    pub front_door_user_header: Option<String>,
    /// Mark the session cookie Secure (set when the front door URL is https). [default: by URL]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_SECURE_COOKIE")]
    pub front_door_secure_cookie: Option<bool>,
    /// Seconds a printed login link stays valid. [default: 300]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_LOGIN_TTL_SECS")]
    pub front_door_login_ttl_secs: Option<u64>,
    /// Seconds a session cookie stays valid. [default: 28800]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_SESSION_TTL_SECS")]
    pub front_door_session_ttl_secs: Option<u64>,
    /// Seconds a forwarded request may take until the viewer's answer starts. [default: 300]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_REQUEST_TIMEOUT_SECS")]
    pub front_door_request_timeout_secs: Option<u64>,
    /// Open front door connections at most (also per peer: half of it). [default: 256]
    #[arg(long, env = "AGENT_MONITOR_FRONT_DOOR_MAX_CONNECTIONS")]
    pub front_door_max_connections: Option<usize>,
    /// Live viewers in all; a View beyond it waits for room (not refused). [default: no limit]
    #[arg(long, env = "AGENT_MONITOR_MAX_VIEWERS")]
    pub max_viewers: Option<usize>,
    /// Viewers starting (job started, not yet ready) at once; more wait. [default: no limit]
    #[arg(long, env = "AGENT_MONITOR_MAX_STARTS")]
    pub max_starts: Option<usize>,
    /// launchviewer, which platform checks run a sample View with. [default: next to this executable]
    #[arg(long, env = "AGENT_MONITOR_LAUNCHVIEWER_COMMAND")]
    pub launchviewer_command: Option<PathBuf>,
    /// Seconds a platform check's sample View may take. [default: 900]
    #[arg(long, env = "AGENT_MONITOR_PLATFORM_CHECK_TIMEOUT_SECS")]
    pub platform_check_timeout_secs: Option<u64>,
    /// Seconds a rotated-out job key is still accepted: running jobs hold its tokens. [default: 32400 (9 h)]
    #[arg(long, env = "AGENT_MONITOR_JOB_KEY_GRACE_SECS")]
    pub job_key_grace_secs: Option<u64>,
    /// Seconds an ended instance's job files, log and history are kept. [default: 2592000 (30 days)]
    #[arg(long, env = "AGENT_MONITOR_RETENTION_SECS")]
    pub retention_secs: Option<u64>,
    /// Stored viewer database versions kept per pair. [default: 3]
    #[arg(long, env = "AGENT_MONITOR_ARCHIVES_KEEP")]
    pub archives_keep: Option<usize>,
}

/// Idle and lifetime limits of one viewer type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerLimits {
    pub idle_timeout_secs: Option<u64>,
    pub max_lifetime_secs: Option<u64>,
    /// Live viewers of this type; a View beyond it waits for room.
    pub max_viewers: Option<usize>,
}

/// Limits with defaults applied.
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub per_viewer: std::collections::BTreeMap<String, (Duration, Duration)>,
}

impl Limits {
    /// (idle timeout, max lifetime) for a viewer type.
    pub fn for_viewer(&self, viewer: &str) -> (Duration, Duration) {
        self.per_viewer.get(viewer).copied().unwrap_or((self.idle_timeout, self.max_lifetime))
    }
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
    /// The job is fetched over XML-RPC rather than read from a file (`job_delivery = fetch`).
    pub fetch_jobs: bool,
    /// The Slurm launcher's settings, when `launcher = slurm`.
    pub slurm: Option<crate::launcher::slurm::SlurmSettings>,
    /// `launcher = record`: jobs are recorded, never run (benchmarks and tests only).
    pub record_jobs: bool,
    pub platform: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub body: crate::edge::BodyLimits,
    pub edge: crate::edge::EdgeLimits,
    pub archives_keep: usize,
    pub libvirt_uri: String,
    pub sweep_every: Duration,
    pub orphan_grace: Duration,
    pub salvage_timeout: Duration,
    pub launch_deadline: Duration,
    pub stop_deadline: Duration,
    pub limits: Limits,
    /// The front door's settings, when `front_door_listen` is set.
    pub front_door: Option<crate::frontdoor::Settings>,
    pub capacity: crate::capacity::Capacity,
    pub retention: Duration,
    pub job_key_grace: Duration,
    /// launchviewer for platform checks, if there is one.
    pub launchviewer: Option<PathBuf>,
    pub platform_check_timeout: Duration,
    /// The settings as given (flags and environment, before the file): SIGHUP resolves them
    /// again, re-reading the file.
    pub source: Settings,
}

impl Settings {
    /// Layers the config file (if any) under flags and environment, then fills defaults.
    pub fn resolve(mut self) -> anyhow::Result<Resolved> {
        let source = self.clone();
        if let Some(path) = self.config.clone() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
            let file: Settings =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?;
            layer!(
                self,
                file,
                state_dir,
                listen,
                public_url,
                lease_secs,
                heartbeat_secs,
                start_grace_secs,
                reap_every_ms,
                cancel_grace_secs,
                job_command,
                job_delivery,
                launcher,
                slurm_partition,
                slurm_memory_overhead_mib,
                slurm_output,
                slurm_timeout_secs,
                slurm_bin_dir,
                platform,
                memory_mib,
                vcpus,
                max_body_bytes,
                archives_keep,
                max_call_bytes,
                max_large_requests,
                header_timeout_secs,
                body_timeout_secs,
                max_connections,
                max_connections_per_peer,
                shutdown_grace_secs,
                libvirt_uri,
                sweep_secs,
                orphan_grace_secs,
                salvage_timeout_secs,
                launch_deadline_secs,
                stop_deadline_secs,
                idle_timeout_secs,
                max_lifetime_secs,
                front_door_listen,
                front_door_url,
                front_door_tls_cert,
                front_door_tls_key,
                front_door_trusted_peers,
                front_door_user_header,
                front_door_secure_cookie,
                front_door_login_ttl_secs,
                front_door_session_ttl_secs,
                front_door_request_timeout_secs,
                front_door_max_connections,
                max_viewers,
                max_starts,
                retention_secs,
                job_key_grace_secs,
                launchviewer_command,
                platform_check_timeout_secs
            );
            if self.viewer.is_empty() {
                self.viewer = file.viewer.clone();
            }
        }
        let lease = Duration::from_secs(self.lease_secs.unwrap_or(30).max(1));
        let heartbeat = Duration::from_secs(self.heartbeat_secs.unwrap_or(5).max(1));
        if heartbeat >= lease {
            anyhow::bail!(
                "heartbeat_secs ({}) must be shorter than lease_secs ({})",
                heartbeat.as_secs(),
                lease.as_secs()
            );
        }
        let fetch_jobs = match self.job_delivery.as_deref().unwrap_or("file") {
            "file" => false,
            "fetch" => true,
            other => anyhow::bail!("job_delivery must be file or fetch, not {other:?}"),
        };
        let life_default = Duration::from_secs(self.max_lifetime_secs.unwrap_or(8 * 3600));
        let launcher = self.launcher.as_deref().unwrap_or("process");
        let record_jobs = launcher == "record";
        let slurm = match launcher {
            "process" | "record" => None,
            "slurm" => Some(crate::launcher::slurm::SlurmSettings {
                partition: self.slurm_partition.clone(),
                memory_overhead_mib: self.slurm_memory_overhead_mib.unwrap_or(256),
                // The lifetime limit moves a viewer to stopping; its teardown (up to
                // vruntask's stop timeout, 60 s) must still fit before Slurm kills the job.
                time_limit: self
                    .viewer
                    .values()
                    .filter_map(|v| v.max_lifetime_secs)
                    .map(Duration::from_secs)
                    .fold(life_default, Duration::max)
                    + Duration::from_secs(300),
                output: self.slurm_output.clone().unwrap_or_else(|| "/tmp/%x.%j.log".into()),
                job_command: self.job_command.clone().unwrap_or_else(|| PathBuf::from("vruntask")),
                timeout: Duration::from_secs(self.slurm_timeout_secs.unwrap_or(10).max(1)),
                bin_dir: self.slurm_bin_dir.clone(),
            }),
            other => anyhow::bail!("launcher must be process, slurm or record, not {other:?}"),
        };
        let reap_default = (lease / 4).min(Duration::from_secs(5));
        let front_door = front_door::resolve(&self, self.shutdown_grace_secs.unwrap_or(10))?;
        Ok(Resolved {
            front_door,
            state_dir: self.state_dir.unwrap_or_else(|| PathBuf::from("var/agent-monitor")),
            listen: self.listen.unwrap_or_else(|| "127.0.0.1:8085".parse().expect("valid default")),
            public_url: self.public_url,
            lease,
            heartbeat,
            start_grace: Duration::from_secs(self.start_grace_secs.unwrap_or(60)),
            reap_every: self
                .reap_every_ms
                .map(Duration::from_millis)
                .unwrap_or(reap_default)
                .max(Duration::from_millis(50)),
            cancel_grace: Duration::from_secs(self.cancel_grace_secs.unwrap_or(30)),
            job_command: self.job_command.unwrap_or_else(default_job_command),
            fetch_jobs,
            slurm,
            record_jobs,
            platform: self.platform.unwrap_or_else(|| "/var/lib/vrun/viewer-image".into()),
            memory_mib: self.memory_mib.unwrap_or(512),
            vcpus: self.vcpus.unwrap_or(1),
            body: crate::edge::BodyLimits {
                max_body: self.max_body_bytes.unwrap_or(64 << 20),
                max_call: self.max_call_bytes.unwrap_or(1 << 20),
                max_large: self.max_large_requests.unwrap_or(2).max(1),
                timeout: Duration::from_secs(self.body_timeout_secs.unwrap_or(60).max(1)),
            },
            edge: crate::edge::EdgeLimits {
                header_timeout: Duration::from_secs(self.header_timeout_secs.unwrap_or(10).max(1)),
                max_connections: self.max_connections.unwrap_or(1024).min(descriptor_budget()).max(1),
                max_per_peer: self.max_connections_per_peer.unwrap_or(512).max(1),
                shutdown_grace: Duration::from_secs(self.shutdown_grace_secs.unwrap_or(10)),
            },
            archives_keep: self.archives_keep.unwrap_or(3).max(1),
            libvirt_uri: self.libvirt_uri.unwrap_or_else(|| "qemu:///system".into()),
            sweep_every: Duration::from_secs(self.sweep_secs.unwrap_or(30).max(1)),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs.unwrap_or(60)),
            salvage_timeout: Duration::from_secs(self.salvage_timeout_secs.unwrap_or(60)),
            launch_deadline: Duration::from_secs(self.launch_deadline_secs.unwrap_or(600)),
            stop_deadline: Duration::from_secs(self.stop_deadline_secs.unwrap_or(300)),
            launchviewer: self.launchviewer_command.clone().or_else(|| sibling("launchviewer")),
            platform_check_timeout: Duration::from_secs(self.platform_check_timeout_secs.unwrap_or(900).max(1)),
            source,
            job_key_grace: Duration::from_secs(self.job_key_grace_secs.unwrap_or(9 * 3600)),
            retention: Duration::from_secs(self.retention_secs.unwrap_or(30 * 24 * 3600).max(1)),
            capacity: crate::capacity::Capacity {
                max_viewers: self.max_viewers,
                per_type: self.viewer.iter().filter_map(|(k, v)| Some((k.clone(), v.max_viewers?))).collect(),
                max_starts: self.max_starts.map(|n| n.max(1)),
            },
            limits: {
                let idle = Duration::from_secs(self.idle_timeout_secs.unwrap_or(3600));
                let life = Duration::from_secs(self.max_lifetime_secs.unwrap_or(8 * 3600));
                let per_viewer = self
                    .viewer
                    .iter()
                    .map(|(k, v)| {
                        let i = v.idle_timeout_secs.map(Duration::from_secs).unwrap_or(idle);
                        let l = v.max_lifetime_secs.map(Duration::from_secs).unwrap_or(life);
                        (k.clone(), (i, l))
                    })
                    .collect();
                Limits { idle_timeout: idle, max_lifetime: life, per_viewer }
            },
        })
    }
}

/// Connections the descriptor limit leaves room for: half of what remains after 128 kept
/// for SQLite, job starts and `/proc` scans. 300 sockets on a 256-descriptor daemon made
/// `accept`, job starts and cancels fail with EMFILE (issue 13).
pub(crate) fn descriptor_budget() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    (lim.rlim_cur as usize).saturating_sub(128) / 2
}

/// A program next to this executable, if it is there.
fn sibling(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(name)).filter(|p| p.exists())
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
