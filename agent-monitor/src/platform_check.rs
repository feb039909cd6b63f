//! The check that approves a platform: `addPlatform` ([`add`]) records it as validating
//! and creates its scratch instance, and [`check`] drives a real View of a sample through
//! it (`launchviewer --wait`: VIEWERUP, import), stops it and requires the database saved
//! on power-off; the verdict goes to [`crate::platforms`]. [`resume`] picks up checks an
//! earlier run of the daemon left unfinished.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use vrun_proto::{FaultCode, Pair, RpcError, ViewerState};

use crate::daemon::Daemon;
use crate::instances::{self, ItsJob};
use crate::platforms;
use crate::store::{now_ms, Db};

/// The sample the check imports.
const SAMPLE: &str = include_str!("../../launchviewer/samples/sample.sarif");

/// Records `name` as validating (a rejected or retired one may be added again) and
/// creates its scratch instance; returns the instance's generation and its job start.
pub fn add(
    conn: &Connection,
    name: &str,
    path: &str,
    sha256: &str,
    ctx: &instances::JobContext,
) -> Db<(i64, Vec<instances::Effect>)> {
    let pair = platforms::check_pair(name)?;
    if let Some(s) = platforms::state(conn, name)?.filter(|s| s == "validating" || s == "approved") {
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
    platforms::record_validating(conn, name, path, sha256, inst.generation, now)?;
    Ok((inst.generation, start.into_iter().collect()))
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
    if let Err(e) = m.store.write(move |c| platforms::verdict(c, &n, approved, &reason)).await {
        tracing::error!(platform = %name, error = %e.message, "cannot record the platform check's verdict");
    }
}

async fn run_check(m: &Arc<Daemon>, name: &str, generation: i64) -> Result<(), String> {
    let Some(s) = m.platform_check.clone() else {
        return Err("this agent-monitor has no launchviewer to run checks with".into());
    };
    let pair = platforms::check_pair(name).map_err(|e| e.message)?;
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
async fn sample_view(
    s: &platforms::CheckSettings,
    pair: &Pair,
    sample: &std::path::Path,
) -> Result<(String, String), String> {
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
    let Ok(all) = m.store.read(platforms::list).await else { return };
    for p in all.into_iter().filter(|p| p.state == "validating") {
        let live = match (p.generation, platforms::check_pair(&p.name)) {
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
                let _ = m.store.write(move |c| platforms::verdict(c, &name, false, why)).await;
            }
        }
    }
}
