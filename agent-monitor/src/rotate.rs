//! `agent-monitor rotate-secrets [--role R]…`: the admin command that asks the running daemon
//! for fresh secrets (`agentMonitor.rotateSecrets`). Clients read the new ones from
//! `<state>/secrets/`; running jobs keep working on the old job key for its grace.

use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::value::StructBuilder;

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// agent-monitor's XML-RPC URL.
    #[arg(long, env = "AGENT_MONITOR_URL", default_value = "http://127.0.0.1:8085/RPC2")]
    pub url: String,
    /// The admin secret (its file is rewritten by the rotation if `admin` is rotated).
    #[arg(long, env = "AGENT_MONITOR_SECRET_FILE", default_value = "var/agent-monitor/secrets/admin.secret")]
    pub secret_file: std::path::PathBuf,
    /// A role to rotate: admin, launcher, metrics or jobs (the job key). Repeatable; all when absent.
    #[arg(long = "role")]
    pub roles: Vec<String>,
}

pub async fn run(args: RotateArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_secret_file("admin", &args.secret_file)?;
    let client = AgentMonitorClient::new(&args.url, creds)?;
    let params = if args.roles.is_empty() {
        Vec::new()
    } else {
        let roles = args.roles.iter().map(|r| dxr::Value::String(r.clone())).collect();
        vec![StructBuilder::new().value("roles", dxr::Value::Array(roles)).build()]
    };
    let rotated = client.call(vrun_proto::methods::ROTATE_SECRETS, params).await?;
    if let dxr::Value::Array(roles) = rotated {
        let names: Vec<String> = roles.iter().filter_map(vrun_proto::value::lenient_str).collect();
        eprintln!("rotated: {}", names.join(", "));
    }
    Ok(())
}
