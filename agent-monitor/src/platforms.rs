//! Platforms (viewer VM images) validated before users get them, as POD validates an
//! activity by installing it on a worker first.
//!
//! `agentMonitor.addPlatform` (CLI: `agent-monitor platform add NAME PATH`) records the image
//! as `validating` and creates a scratch instance (`platform-<name>.CodeDX`) that runs it
//! through the configured launcher, like any View; [`check`] then drives a real View of a
//! sample through it (`launchviewer --wait`: VIEWERUP, import), stops it, and requires the
//! database saved on power-off. The platform is `approved` or `rejected` with the reason;
//! the scratch instance leaves nothing behind but its stored database. Launches use the newest
//! approved platform ([`current`]); with none approved, the configured `--platform`.
//! `removePlatform` retires one: new launches stop using it, running viewers keep theirs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use vrun_proto::{FaultCode, Pair, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances::{self, ItsJob};
use crate::store::{now_ms, Db};

/// The sample the check imports.
const SAMPLE: &str = include_str!("../../launchviewer/samples/sample.sarif");
/// The scratch pair's viewer type.
pub const CHECK_VIEWER: &str = "CodeDX";

/// How a check is run (settings; `None` when this daemon cannot run checks).
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub launchviewer: PathBuf,
    pub agent_monitor_url: String,
    pub launcher_secret: PathBuf,
    pub timeout: Duration,
}

/// One platform as `listPlatforms` shows it.
#[derive(Debug, Clone)]
pub struct Platform {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub state: String,
    pub reason: String,
    pub generation: Option<i64>,
    pub added_ms: i64,
    pub updated_ms: i64,
}

/// The scratch pair that checks platform `name`.
pub fn check_pair(name: &str) -> Result<Pair, RpcError> {
    if name.len() > 48 {
        return Err(RpcError::new(FaultCode::InvalidName, "a platform name is at most 48 characters"));
    }
    Ok(Pair::new(&format!("platform-{name}"), CHECK_VIEWER)?)
}

/// The newest approved platform's (path, checksum), if any.
pub fn current(conn: &Connection) -> Db<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT path, sha256 FROM platforms WHERE state = 'approved' ORDER BY updated_ms DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub fn list(conn: &Connection) -> Db<Vec<Platform>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, path, sha256, state, reason, generation, added_ms, updated_ms FROM platforms ORDER BY added_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Platform {
            name: r.get(0)?,
            path: r.get(1)?,
            sha256: r.get(2)?,
            state: r.get(3)?,
            reason: r.get(4)?,
            generation: r.get(5)?,
            added_ms: r.get(6)?,
            updated_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records `name` as validating (a rejected or retired one may be added again) and
/// creates its scratch instance; returns the instance's generation and its job start.
pub fn add(
    conn: &Connection,
    name: &str,
    path: &str,
    sha256: &str,
    ctx: &instances::JobContext,
) -> Db<(i64, Vec<instances::Effect>)> {
    let pair = check_pair(name)?;
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM platforms WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if let Some(s) = state.filter(|s| s == "validating" || s == "approved") {
        return Err(
            RpcError::new(FaultCode::IllegalTransition, format!("platform {name} is {s}; remove it first")).into()
        );
    }
    if instances::live(conn, &pair)?.is_some() {
        return Err(RpcError::new(FaultCode::IllegalTransition, format!("{pair} is still running a check")).into());
    }
    let now = now_ms();
    let p = instances::LaunchParams {
        viewer_uuid: None,
        resultsfolder: None,
        db_path: None,
        user: Some("platformcheck".into()),
        platform: Some((path.to_string(), sha256.to_string())),
    };
    let (inst, start) = instances::create(conn, &pair, &p, ctx, now, &format!("checking platform {name}"))?;
    conn.prepare_cached(
        "INSERT INTO platforms (name, path, sha256, state, reason, generation, added_ms, updated_ms)
         VALUES (?1, ?2, ?3, 'validating', 'booting it once in a scratch VM', ?4, ?5, ?5)
         ON CONFLICT (name) DO UPDATE SET path = ?2, sha256 = ?3, state = 'validating',
             reason = 'booting it once in a scratch VM', generation = ?4, updated_ms = ?5",
    )?
    .execute(params![name, path, sha256, inst.generation, now])?;
    Ok((inst.generation, start.into_iter().collect()))
}

/// Ends a check's verdict (only while it is still validating: a removal wins).
fn verdict(conn: &Connection, name: &str, approved: bool, reason: &str) -> Db<()> {
    conn.prepare_cached(
        "UPDATE platforms SET state = ?2, reason = ?3, updated_ms = ?4 WHERE name = ?1 AND state = 'validating'",
    )?
    .execute(params![name, if approved { "approved" } else { "rejected" }, reason, now_ms()])?;
    Ok(())
}

/// Retires `name`; returns whether it existed.
pub fn remove(conn: &Connection, name: &str) -> Db<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE platforms SET state = 'retired', reason = 'removed by an admin', updated_ms = ?2 WHERE name = ?1",
        )?
        .execute(params![name, now_ms()])?;
    Ok(n > 0)
}

/// Runs the check of platform `name` (scratch instance `generation`) to its verdict.
pub async fn check(m: Arc<Daemon>, name: String, generation: i64) {
    let (approved, reason) = match run_check(&m, &name, generation).await {
        Ok(()) => (true, "booted, imported the sample and saved its database on power-off".to_string()),
        Err(why) => (false, why),
    };
    tracing::info!(platform = %name, approved, %reason, "platform check done");
    // Whatever happened, the scratch VM does not outlive its check.
    let ctx = m.job_ctx.clone();
    let ended = m
        .store
        .write(move |c| match instances::by_generation(c, generation)?.filter(|i| !i.state.is_terminal()) {
            Some(mut inst) => {
                let why = "platform check over";
                instances::finish(c, &mut inst, ViewerState::Failed, why, &ctx, now_ms(), ItsJob::Cancel)
            }
            None => Ok(Vec::new()),
        })
        .await;
    if let Ok(effects) = ended {
        m.apply(effects);
    }
    let n = name.clone();
    if let Err(e) = m.store.write(move |c| verdict(c, &n, approved, &reason)).await {
        tracing::error!(platform = %name, error = %e.message, "cannot record the platform check's verdict");
    }
}

async fn run_check(m: &Arc<Daemon>, name: &str, generation: i64) -> Result<(), String> {
    let Some(s) = m.platform_check.clone() else {
        return Err("this agent-monitor has no launchviewer to run checks with".into());
    };
    let pair = check_pair(name).map_err(|e| e.message)?;
    let sample = m.jobs_dir.join(format!("platform-check-{generation}.sarif"));
    std::fs::write(&sample, SAMPLE).map_err(|e| format!("cannot write the sample: {e}"))?;
    let outcome = sample_view(&s, &pair, &sample).await;
    let _ = std::fs::remove_file(&sample);
    let (out, err) = outcome?;
    // launchviewer's one line: `READY <url>` after the import, anything else is why not.
    if !out.lines().any(|l| l.starts_with("READY ")) {
        let said = out.trim().to_string();
        let line = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        return Err(format!("the sample View failed: {}", if said.is_empty() { line } else { said }));
    }
    // The View must have been served by the scratch VM itself (not a relaunch without it).
    let p = pair.clone();
    let now = m.store.read(move |c| instances::latest(c, &p)).await.map_err(|e| e.message)?;
    if now.as_ref().map(|i| i.generation) != Some(generation) {
        return Err("the scratch VM ended before the sample View".into());
    }
    // Power-off must save the database, as every user's stop does.
    let p = pair.clone();
    m.store
        .write(move |c| match instances::by_generation(c, generation)?.filter(|i| !i.state.is_terminal()) {
            Some(mut inst) => {
                instances::transition(c, &mut inst, ViewerState::Stopping, "platform check: power-off", now_ms())
            }
            None => Err(RpcError::new(FaultCode::IllegalTransition, format!("{p} ended before its power-off")).into()),
        })
        .await
        .map_err(|e| e.message)?;
    let end = tokio::time::Instant::now() + m.timing.stop_deadline;
    loop {
        let inst = m.store.read(move |c| instances::by_generation(c, generation)).await.map_err(|e| e.message)?;
        match inst {
            Some(i) if i.state == ViewerState::Stopped => break,
            Some(i) if i.state == ViewerState::Failed => return Err(format!("its power-off failed: {}", i.reason)),
            _ if tokio::time::Instant::now() > end => return Err("it did not power off in time".into()),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let p = pair.clone();
    let saved = m
        .store
        .read(move |c| Ok(crate::archives::list(c, &p)?.iter().any(|(_, g, _, _)| *g == generation)))
        .await
        .map_err(|e| e.message)?;
    if saved {
        Ok(())
    } else {
        Err("it powered off without saving its database".into())
    }
}

/// Runs `launchviewer --wait` on the sample; its (stdout, stderr). Read to their end rather
/// than judged by the exit status: the launcher's one waiter thread reaps every child of
/// agent-monitor (`launcher::child_waiter`), this one included, so its status may be gone.
async fn sample_view(s: &CheckSettings, pair: &Pair, sample: &std::path::Path) -> Result<(String, String), String> {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(&s.launchviewer)
        .args(["--project", pair.project(), "--viewer", pair.viewer(), "--user", "platformcheck"])
        .args(["--package", "platform-check", "--wait", &s.timeout.as_secs().to_string(), "--results"])
        .arg(sample)
        .env("AGENT_MONITOR_URL", &s.agent_monitor_url)
        .env("AGENT_MONITOR_SECRET_FILE", &s.launcher_secret)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", s.launchviewer.display()))?;
    let (mut so, mut se) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let (mut out, mut err) = (String::new(), String::new());
    let read = async { tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err)) };
    if tokio::time::timeout(s.timeout + Duration::from_secs(30), read).await.is_err() {
        return Err(format!("no answer within {} s", s.timeout.as_secs()));
    }
    // Reaped here or by the job waiter (then ECHILD): either way it has ended.
    let _ = child.wait().await;
    Ok((out, err))
}

/// At start: checks that were under way continue if their scratch VM still runs; the
/// others are rejected (their View cannot be followed from the middle).
pub async fn resume(m: &Arc<Daemon>) {
    let Ok(all) = m.store.read(list).await else { return };
    for p in all.into_iter().filter(|p| p.state == "validating") {
        let live = match (p.generation, check_pair(&p.name)) {
            (Some(g), Ok(pair)) => {
                m.store.read(move |c| instances::live(c, &pair)).await.ok().flatten().is_some_and(|i| i.generation == g)
            }
            _ => false,
        };
        match (live, p.generation) {
            (true, Some(g)) => {
                tokio::spawn(check(Arc::clone(m), p.name.clone(), g));
            }
            _ => {
                let name = p.name.clone();
                let why = "its check was interrupted by a restart; add it again";
                let _ = m.store.write(move |c| verdict(c, &name, false, why)).await;
            }
        }
    }
}
