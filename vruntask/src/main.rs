//! `vruntask run <job file>`: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vruntask::{Accel, NetMode, Options};

#[derive(Parser)]
#[command(name = "vruntask", version, about = "Runs one viewer VM for agent-monitor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job described by JOB_FILE.
    Run {
        job_file: PathBuf,
        /// libvirt connection URI.
        #[arg(long, env = "VRUN_LIBVIRT_URI", default_value = "qemu:///system")]
        uri: String,
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
        accel: AccelChoice,
        /// Where the accelerator probe's verdict is cached.
        #[arg(long, env = "VRUN_RUNTIME_DIR", default_value = "/run/vrun")]
        runtime_dir: PathBuf,
    },
}

fn main() {
    vruntask::jobfile::keep_lock_fd_private();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Command::Run { job_file, uri, work_root, network, bridge_network, guest_port, boot_timeout, stop_timeout, accel, runtime_dir } =
        cli.command;
    let network = match network.as_str() {
        "loopback" => NetMode::Loopback,
        "bridge" => NetMode::Bridge(bridge_network),
        other => {
            eprintln!("vruntask: --network must be loopback or bridge, not {other:?}");
            std::process::exit(vruntask::Exit::BadJob as i32);
        }
    };
    let accel = match accel {
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Auto => {
            let kernel = vruntask::jobfile::load(&job_file).ok().map(|j| PathBuf::from(j.platform).join("vmlinuz"));
            vruntask::accel::detect(&runtime_dir, kernel.as_deref().filter(|k| k.is_file()))
        }
    };
    let opts = Options {
        uri,
        work_root,
        network,
        guest_port,
        boot_timeout: Duration::from_secs(boot_timeout),
        stop_timeout: Duration::from_secs(stop_timeout),
        accel,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let exit = rt.block_on(vruntask::run(&job_file, opts));
    std::process::exit(exit as i32);
}
