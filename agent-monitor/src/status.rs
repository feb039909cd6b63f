//! `agent-monitor status [--json]`: the admin's table of viewers, this daemon's id and the
//! foreign domains on its hypervisor, read over XML-RPC.

use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::methods::{HostInfo, InstanceRecord};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// agent-monitor's XML-RPC URL.
    #[arg(long, env = "AGENT_MONITOR_URL", default_value = "http://127.0.0.1:8085/RPC2")]
    pub url: String,
    /// The admin secret (created by agent-monitor at first start).
    #[arg(long, env = "AGENT_MONITOR_SECRET_FILE", default_value = "var/agent-monitor/secrets/admin.secret")]
    pub secret_file: std::path::PathBuf,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_secret_file("admin", &args.secret_file)?;
    let client = AgentMonitorClient::new(&args.url, creds)?;
    let records = client.list_viewers().await?;
    let host = client.host_info().await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    if args.json {
        // One row per viewer, as before; each names the daemon it belongs to.
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut row = to_json(r, now);
                row["monitor_id"] = host.monitor_id.clone().into();
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&records, now));
        print!("{}", host_lines(&host));
    }
    Ok(())
}

/// This daemon's id and the other agent-monitors' domains on its hypervisor (shown so an
/// admin knows they are there and why this daemon leaves them alone), and the nodes whose
/// DomainMonitors report.
pub fn host_lines(host: &HostInfo) -> String {
    let nodes = if host.nodes.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = host.nodes.iter().map(|(n, d)| format!("{n} ({d} domain(s))")).collect();
        format!("nodes reporting (DomainMonitors): {}\n", list.join(", "))
    };
    if !host.hypervisor_reachable && !host.nodes.is_empty() {
        return format!("agent-monitor {}; no hypervisor of its own\n{nodes}", host.monitor_id);
    }
    if !host.hypervisor_reachable {
        return format!("agent-monitor {}; hypervisor unreachable: domains unknown\n", host.monitor_id);
    }
    let mut out = format!(
        "agent-monitor {}: {} own domain(s), {} foreign\n",
        host.monitor_id,
        host.own_domains,
        host.foreign_domains.len()
    );
    if !host.foreign_domains.is_empty() {
        out.push_str(&format!(
            "foreign domains (not this agent-monitor's; never touched): {}\n",
            host.foreign_domains.len()
        ));
        for d in &host.foreign_domains {
            let owner = if d.owner.is_empty() { "no owner" } else { d.owner.as_str() };
            let run = if d.running { "running" } else { "shut off" };
            out.push_str(&format!(
                "  {}  owner {owner}  {}.{} g{}  {run}\n",
                d.name, d.project, d.viewer, d.generation
            ));
        }
    }
    out.push_str(&nodes);
    out
}

fn to_json(r: &InstanceRecord, now: f64) -> serde_json::Value {
    serde_json::json!({
        "project": r.project, "viewer": r.viewer, "state": r.state, "generation": r.generation,
        "address": r.address, "domain": r.domain, "domain_exists": r.domain_exists,
        "age_secs": (now - r.created).max(0.0).round(), "last_change_secs": (now - r.updated).max(0.0).round(),
        "reason": r.reason, "relaunch_pending": r.relaunch_pending, "job_id": r.job_id, "node": r.node,
    })
}

fn ago(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub fn table(records: &[InstanceRecord], now: f64) -> String {
    let mut rows =
        vec![["PROJECT", "VIEWER", "STATE", "GEN", "ADDRESS", "JOB", "NODE", "DOMAIN", "AGE", "CHANGED", "REASON"]
            .map(String::from)];
    let dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    for r in records {
        rows.push([
            r.project.clone(),
            r.viewer.clone(),
            r.state.clone(),
            r.generation.to_string(),
            dash(&r.address),
            dash(&r.job_id),
            dash(&r.node),
            r.domain_exists.clone(),
            ago(now - r.created),
            ago(now - r.updated),
            r.reason.chars().take(60).collect(),
        ]);
    }
    // Every column, REASON last (a fixed count here once dropped CHANGED and REASON when
    // JOB and NODE were added).
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if records.is_empty() {
        out.push_str("(no viewers)\n");
    }
    out
}
