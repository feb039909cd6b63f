//! `vruntask run <job file>`, `vruntask probe-accel` and `vruntask domain-monitor`: parses
//! arguments and hands over to the library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vruntask::accel::Choice;
use vruntask::{NetMode, Options};

#[derive(Parser)]
#[command(name = "vruntask", version, about = "Runs one viewer VM for agent-monitor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job described by JOB_FILE.
    Run(RunArgs),
    /// Settle KVM or TCG for this host boot (up to 8 s; cached), so no View pays for it.
    ProbeAccel {
        /// The platform's kernel to boot under KVM.
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long, env = "VRUN_ACCEL", value_enum, default_value = "auto")]
        accel: Choice,
        #[arg(long, env = "VRUN_RUNTIME_DIR", default_value = "/run/vrun")]
        runtime_dir: PathBuf,
    },
    /// Watch this node's vrun domains: salvage those whose job is gone, report them all to
    /// agent-monitor (one per hypervisor node, long-running; stops on SIGTERM).
    DomainMonitor(MonitorArgs),
}

#[derive(clap::Args)]
struct MonitorArgs {
    /// This node's name (as `vruntask run` resolves it: SLURMD_NODENAME, else the host name).
    #[arg(long, env = "VRUN_NODE_NAME")]
    node_name: Option<String>,
    /// agent-monitor's XML-RPC URL.
    #[arg(long, env = "VRUN_AGENT_MONITOR_URL")]
    agent_monitor_url: String,
    /// The node credential: a copy of agent-monitor's `secrets/node.secret`, owner-only.
    #[arg(long, env = "VRUN_NODE_SECRET_FILE", default_value = "/etc/vrun/node.secret")]
    secret_file: PathBuf,
    /// libvirt connection URI.
    #[arg(long, env = "VRUN_LIBVIRT_URI", default_value = "qemu:///system")]
    uri: String,
    /// Where the node's runs hold their locks (as `vruntask run`).
    #[arg(long, env = "VRUN_RUNTIME_DIR", default_value = "/run/vrun")]
    runtime_dir: PathBuf,
    /// Where the node's runs make their work directories (as `vruntask run`).
    #[arg(long, env = "VRUN_WORK_ROOT", default_value = "/var/lib/vrun/work")]
    work_root: PathBuf,
    /// Seconds between sweeps (libvirt events also start one).
    #[arg(long, env = "VRUN_MONITOR_EVERY", default_value_t = 10.0)]
    every: f64,
    /// Seconds a guest gets to save its database after the power button.
    #[arg(long, env = "VRUN_STOP_TIMEOUT", default_value_t = 60)]
    stop_timeout: u64,
    /// Seconds a live job may keep a domain whose instance ended before it is salvaged.
    #[arg(long, default_value_t = 120)]
    grace: u64,
    /// Seconds each libvirt step may take.
    #[arg(long, env = "VRUN_LIBVIRT_TIMEOUT", default_value_t = 30)]
    libvirt_timeout: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job file agent-monitor wrote (one host). Without it the job is fetched with
    /// `--from-agent-monitor` and the token in `VRUN_JOB_TOKEN`.
    #[arg(required_unless_present = "from_agent_monitor")]
    job_file: Option<PathBuf>,
    /// agent-monitor's XML-RPC URL to fetch the job from (no shared filesystem).
    #[arg(long, env = "VRUN_AGENT_MONITOR_URL", conflicts_with = "job_file")]
    from_agent_monitor: Option<String>,
    /// This node's platform images, found by the job's platform name.
    #[arg(long, env = "VRUN_IMAGE_DIR")]
    image_dir: Option<PathBuf>,
    /// The node's address the front end reaches, bound by the loopback forward and reported.
    #[arg(long, env = "VRUN_ADVERTISE_ADDRESS", default_value = "127.0.0.1")]
    advertise_address: std::net::Ipv4Addr,
    /// libvirt connection URI.
    #[arg(long, env = "VRUN_LIBVIRT_URI", default_value = "qemu:///system")]
    uri: String,
    /// This node's name, written into the domain's metadata (default: SLURMD_NODENAME, else
    /// the host name).
    #[arg(long, env = "VRUN_NODE_NAME")]
    node_name: Option<String>,
    /// Where per-run work directories are created.
    #[arg(long, env = "VRUN_WORK_ROOT", default_value = "/var/lib/vrun/work")]
    work_root: PathBuf,
    /// `loopback` (QEMU user networking, forward from 127.0.0.1) or `bridge`.
    #[arg(long, env = "VRUN_NETWORK", default_value = "loopback")]
    network: String,
    /// libvirt network for `--network bridge`.
    #[arg(long, env = "VRUN_BRIDGE_NETWORK", default_value = "vrun")]
    bridge_network: String,
    /// Port the viewer listens on inside the VM.
    #[arg(long, default_value_t = 8080)]
    guest_port: u16,
    /// Seconds from VM start to VIEWERUP before the run fails.
    #[arg(long, env = "VRUN_BOOT_TIMEOUT", default_value_t = 120)]
    boot_timeout: u64,
    /// Seconds the guest gets to save its database after the power button.
    #[arg(long, env = "VRUN_STOP_TIMEOUT", default_value_t = 60)]
    stop_timeout: u64,
    /// KVM, TCG, or probe once per host boot.
    #[arg(long, env = "VRUN_ACCEL", value_enum, default_value = "auto")]
    accel: Choice,
    /// Where the accelerator probe's verdict is cached.
    #[arg(long, env = "VRUN_RUNTIME_DIR", default_value = "/run/vrun")]
    runtime_dir: PathBuf,
    /// Seconds each libvirt call may take before the run fails naming the call.
    #[arg(long, env = "VRUN_LIBVIRT_TIMEOUT", default_value_t = 30)]
    libvirt_timeout: u64,
    /// Seconds cleanup waits beyond that for a slow libvirt before it gives up on
    /// removing the domain (agent-monitor's sweep removes it later).
    #[arg(long, env = "VRUN_CLEANUP_PATIENCE", default_value_t = 120)]
    cleanup_patience: u64,
}

/// The job token, taken out of the environment before any thread or child exists, so that
/// no helper (qemu-img, QEMU) inherits it.
fn take_job_token() -> Option<String> {
    let token = std::env::var(vruntask::TOKEN_ENV).ok();
    // SAFETY: called first in main, before any other thread is started.
    unsafe { std::env::remove_var(vruntask::TOKEN_ENV) };
    token
}

fn main() {
    let token = take_job_token();
    vruntask::jobfile::keep_lock_fd_private();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let a = match cli.command {
        Command::ProbeAccel { kernel, accel, runtime_dir } => {
            vruntask::probe_accel(accel, &runtime_dir, &kernel);
            return;
        }
        Command::DomainMonitor(a) => domain_monitor(a),
        Command::Run(a) => a,
    };
    let node = match vruntask::joblock::node_name(a.node_name.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("vruntask: {e}");
            std::process::exit(vruntask::Exit::BadJob as i32);
        }
    };
    let network = match a.network.as_str() {
        "loopback" => NetMode::Loopback,
        "bridge" => NetMode::Bridge(a.bridge_network),
        other => {
            eprintln!("vruntask: --network must be loopback or bridge, not {other:?}");
            std::process::exit(vruntask::Exit::BadJob as i32);
        }
    };
    let opts = Options {
        uri: a.uri,
        work_root: a.work_root,
        network,
        guest_port: a.guest_port,
        boot_timeout: Duration::from_secs(a.boot_timeout),
        stop_timeout: Duration::from_secs(a.stop_timeout),
        accel: a.accel,
        runtime_dir: a.runtime_dir,
        libvirt_timeout: Duration::from_secs(a.libvirt_timeout.max(1)),
        cleanup_patience: Duration::from_secs(a.cleanup_patience),
        image_dir: a.image_dir,
        advertise: a.advertise_address,
        node,
    };
    let source = match (a.job_file, a.from_agent_monitor, token) {
        (Some(f), _, _) => vruntask::JobSource::File(f),
        (None, Some(url), Some(token)) => vruntask::JobSource::Fetch { url, token },
        _ => {
            eprintln!("vruntask: --from-agent-monitor needs the job token in {}", vruntask::TOKEN_ENV);
            std::process::exit(vruntask::Exit::BadJob as i32);
        }
    };
    // Two workers: the heartbeat task never waits behind the run's own work.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let exit = rt.block_on(vruntask::run(source, opts));
    std::process::exit(exit as i32);
}

/// `vruntask domain-monitor`: runs until SIGTERM or SIGINT; exits 0 then, 2 when it cannot
/// start (bad node name, unreadable or world-readable credential).
fn domain_monitor(a: MonitorArgs) -> ! {
    let node = vruntask::joblock::node_name(a.node_name.as_deref()).unwrap_or_else(|e| {
        eprintln!("vruntask domain-monitor: {e}");
        std::process::exit(2)
    });
    let settings = vruntask::domain_monitor::Settings {
        node,
        uri: a.uri,
        agent_monitor_url: a.agent_monitor_url,
        secret_file: a.secret_file,
        runtime_dir: a.runtime_dir,
        work_root: a.work_root,
        every: Duration::from_secs_f64(a.every.clamp(0.1, 3600.0)),
        stop_timeout: Duration::from_secs(a.stop_timeout),
        grace: Duration::from_secs(a.grace),
        libvirt_timeout: Duration::from_secs(a.libvirt_timeout.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let result = rt.block_on(vruntask::domain_monitor::run(
        settings,
        Box::pin(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            }
        }),
    ));
    // A libvirt call still blocked past its deadline must not hold the exit up.
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("vruntask domain-monitor: {e}");
            std::process::exit(2)
        }
    }
}
