//! `agent-monitor platform add|list|remove`: the admin's commands for platforms, over
//! XML-RPC (see [`crate::platforms`]). `add --wait` follows the check to its verdict and
//! exits non-zero when the platform is rejected.

use std::time::{Duration, Instant};

use dxr::Value;
use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::methods as m;
use vrun_proto::value::{lenient_str, StructBuilder};

#[derive(Debug, clap::Args)]
pub struct PlatformArgs {
    #[command(subcommand)]
    pub action: Action,
    /// agent-monitor's XML-RPC URL.
    #[arg(long, global = true, env = "AGENT_MONITOR_URL", default_value = "http://127.0.0.1:8085/RPC2")]
    pub url: String,
    /// The admin secret.
    #[arg(
        long,
        global = true,
        env = "AGENT_MONITOR_SECRET_FILE",
        default_value = "var/agent-monitor/secrets/admin.secret"
    )]
    pub secret_file: std::path::PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Check an image in a scratch VM; launches use it once approved.
    Add {
        name: String,
        /// Absolute path of the image (the same file name must be in each node's image directory).
        path: std::path::PathBuf,
        /// Wait up to this many seconds for the verdict.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Every platform, its state and the reason.
    List,
    /// Retire a platform: new launches stop using it.
    Remove { name: String },
}

pub async fn run(args: PlatformArgs) -> anyhow::Result<()> {
    let client = AgentMonitorClient::new(&args.url, Credentials::from_secret_file("admin", &args.secret_file)?)?;
    match args.action {
        Action::Add { name, path, wait } => {
            let path = std::path::absolute(&path)?;
            let params = StructBuilder::new().str("name", &name).str("path", path.to_string_lossy()).build();
            client.call(m::ADD_PLATFORM, vec![params]).await?;
            eprintln!("platform {name}: validating in a scratch VM");
            let Some(secs) = wait else { return Ok(()) };
            let end = Instant::now() + Duration::from_secs(secs);
            loop {
                let row = find(&client, &name).await?;
                match field(&row, "state").as_str() {
                    "approved" => {
                        println!("approved: {}", field(&row, "reason"));
                        return Ok(());
                    }
                    "rejected" => anyhow::bail!("platform {name} rejected: {}", field(&row, "reason")),
                    _ if Instant::now() > end => anyhow::bail!("platform {name}: no verdict within {secs} s"),
                    _ => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        }
        Action::List => {
            let Value::Array(rows) = client.call(m::LIST_PLATFORMS, Vec::new()).await? else {
                anyhow::bail!("listPlatforms answered something else than an array");
            };
            println!("{:<16} {:<10} {:<8} {:<40} REASON", "NAME", "STATE", "CURRENT", "PATH");
            for row in rows {
                let current = matches!(member(&row, "current"), Some(Value::Boolean(true)));
                println!(
                    "{:<16} {:<10} {:<8} {:<40} {}",
                    field(&row, "name"),
                    field(&row, "state"),
                    if current { "yes" } else { "" },
                    field(&row, "path"),
                    field(&row, "reason")
                );
            }
            Ok(())
        }
        Action::Remove { name } => {
            client.call(m::REMOVE_PLATFORM, vec![StructBuilder::new().str("name", &name).build()]).await?;
            eprintln!("platform {name}: retired");
            Ok(())
        }
    }
}

async fn find(client: &AgentMonitorClient, name: &str) -> anyhow::Result<Value> {
    let Value::Array(rows) = client.call(m::LIST_PLATFORMS, Vec::new()).await? else {
        anyhow::bail!("listPlatforms answered something else than an array");
    };
    rows.into_iter().find(|r| field(r, "name") == name).ok_or_else(|| anyhow::anyhow!("no platform {name}"))
}

fn member<'a>(row: &'a Value, key: &str) -> Option<&'a Value> {
    match row {
        Value::Struct(m) => m.get(key),
        _ => None,
    }
}

fn field(row: &Value, key: &str) -> String {
    member(row, key).and_then(lenient_str).unwrap_or_default()
}
