//! `agent-monitor serve | status | rotate-secrets | platform`: parses arguments and hands over to the library.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "agent-monitor", version, about = "vrun's viewer lock and lifecycle daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Box<agent_monitor::config::Settings>),
    /// Show every viewer instance, read over XML-RPC.
    Status(agent_monitor::status::StatusArgs),
    /// Replace secrets without stopping anything (old job key accepted for a grace period).
    RotateSecrets(agent_monitor::rotate::RotateArgs),
    /// Viewer images checked in a scratch VM before users get them.
    Platform(agent_monitor::platform_cli::PlatformArgs),
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.command {
        Command::Serve(settings) => rt.block_on(serve(*settings)),
        Command::Status(args) => rt.block_on(agent_monitor::status::run(args)),
        Command::RotateSecrets(args) => rt.block_on(agent_monitor::rotate::run(args)),
        Command::Platform(args) => rt.block_on(agent_monitor::platform_cli::run(args)),
    };
    // Dropping the runtime would wait for every blocking task: a salvage waiting up to 60 s
    // for a guest, a cancel waiting out its grace. The daemon had said "stopped" and then
    // stayed alive that long (issue 13). What they leave is redone at the next start.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("agent-monitor: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(settings: agent_monitor::config::Settings) -> anyhow::Result<()> {
    let cfg = settings.resolve()?;
    let _lock = agent_monitor::statedir::lock(&cfg.state_dir)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    agent_monitor::run(listener, cfg, Box::pin(agent_monitor::shutdown_signal())).await
}
