//! The command line: `serve`, `check`, `export`, `import`, and their exit codes.
//!
//! Exit codes (also in docs/viewer.md): 0 success; 1 runtime error; 2 bad usage or
//! invalid configuration; 3 archive refused by `import`; 4 data directory in use by a
//! running server. Errors are one line on stderr; stdout carries only the
//! `VIEWERUP <addr>` / `VIEWERDOWN` lines that the VM's init copies to the serial port.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::archive;
use crate::config::{load_run_json, Config, Limits};
use crate::server::{shutdown_signal, ServeError, Server};

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "viewer", version, about = "Code Dx compatible results viewer")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and pages until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Validate a run.json; exit 0, or 2 with one line naming the problem.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Write the whole state of a data directory to one archive file.
    Export {
        #[arg(long)]
        data: PathBuf,
        file: PathBuf,
    },
    /// Replace a data directory's state with a validated archive.
    Import {
        #[arg(long)]
        data: PathBuf,
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// run.json written by vruntask.
    #[arg(long, conflicts_with_all = ["project", "users", "apikey_file", "context"])]
    config: Option<PathBuf>,
    /// Data directory (database, upload scratch space).
    #[arg(long, default_value = "/var/lib/viewer")]
    data: PathBuf,
    /// Address to listen on; default 0.0.0.0:<port from run.json> (8080 without one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Without --config: the SWAMP project name.
    #[arg(long)]
    project: Option<String>,
    /// Without --config: users allowed to see the pages, comma separated.
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Without --config: file holding the API key.
    #[arg(long)]
    apikey_file: Option<PathBuf>,
    /// Without --config: context path, e.g. /proxy-<uuid> (default: none).
    #[arg(long, default_value = "")]
    context: String,
}

/// Reports an error as the one stderr line the contract promises.
fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    let msg = msg.to_string();
    eprintln!("viewer: {}", msg.trim().replace('\n', "; "));
    ExitCode::from(code)
}

/// Parses the arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { config } => match load_run_json(&config) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_USAGE, e),
        },
        Command::Export { data, file } => match archive::export(&data, &file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.exit_code() as u8, e),
        },
        Command::Import { data, file } => match archive::import(&data, &file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.exit_code() as u8, e),
        },
    }
}

/// Builds the runtime configuration and listen address from the flags.
fn serve_config(args: &ServeArgs) -> Result<(Config, SocketAddr), String> {
    let (config, port) = match &args.config {
        Some(path) => {
            let run = load_run_json(path).map_err(|e| e.to_string())?;
            (Config::from_run_json(&run, args.data.clone()), run.port)
        }
        None => {
            let project = args.project.clone().ok_or("--config or --project is required")?;
            let key_file = args.apikey_file.as_ref().ok_or("--config or --apikey-file is required")?;
            let apikey = std::fs::read_to_string(key_file)
                .map_err(|e| format!("cannot read {}: {e}", key_file.display()))?
                .trim()
                .to_owned();
            let config = Config {
                project,
                users: args.users.clone(),
                apikey,
                context: args.context.trim_end_matches('/').to_owned(),
                data_dir: args.data.clone(),
                limits: Limits::default(),
            };
            config.validate().map_err(|e| e.to_string())?;
            (config, 8080)
        }
    };
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
    Ok((config, listen))
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, listen) = match serve_config(&args) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_RUNTIME, format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let server = match Server::open(config) {
            Ok(s) => s,
            Err(e @ ServeError::Busy(_)) => return fail(4, e),
            Err(e) => return fail(EXIT_RUNTIME, e),
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => return fail(EXIT_RUNTIME, format!("cannot listen on {listen}: {e}")),
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_string());
        announce(&format!("VIEWERUP {addr}"));
        let result = server.serve(listener, shutdown_signal()).await;
        announce("VIEWERDOWN");
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_RUNTIME, e),
        }
    })
}

/// Writes one status line to stdout and flushes it (stdout may be a pipe to the serial
/// port, which would otherwise buffer it).
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
