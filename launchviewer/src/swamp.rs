//! SWAMP's invocation, as its `launch_viewer` stored procedure makes it: `--viewer_name
//! --project --viewer_uuid --package --tool_name --source_archive_path --package_type
//! --file_path … [--user_uuid]` (the names of [`crate::Args`]' aliases and of
//! [`SwampArgs`]). `--viewer_uuid` names the `viewer_instance` row the procedure made.
//!
//! The procedure waits for end of file on stdout, so the answer comes at once, as SWAMP's
//! did: one line (`READY <url>` when the viewer was up and took the results, `LAUNCHING
//! <state>` when it is on its way, `ERROR …`), and in the second case a background process
//! ([`crate::detach`]) waits for the viewer, pushes and imports, and records each step in
//! the row ([`crate::dbrow`]). With `--wait`, the whole View happens in the foreground, as
//! without `--viewer_uuid`, and is recorded in the row as well.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use vrun_proto::validate_name;

use crate::dbrow::{self, Row, Status};
use crate::monitor::{Monitor, Waited};
use crate::progress::Progress;
use crate::push::{self, PushError};
use crate::{detach, input, Args, Outcome};

/// SWAMP's options that launchviewer has no use for are accepted and ignored (listed in
/// docs/launchviewer.md); the ones it uses are aliases in [`crate::Args`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SwampArgs {
    /// The viewer_instance row (SWAMP's viewer instance UUID): answer at once and record the
    /// View's progress there (needs --db-config).
    #[arg(long = "viewer_uuid", value_name = "UUID")]
    pub viewer_uuid: Option<String>,
    /// Database connection for the viewer_instance row (TOML, mode 0600).
    #[arg(long = "db-config", env = "VRUN_DB_CONFIG", value_name = "FILE")]
    pub db_config: Option<PathBuf>,
    /// How long the background process may take to finish a View (viewer start, upload, import).
    #[arg(long = "background-wait", value_name = "SECONDS", default_value_t = 900)]
    pub background_wait: u64,
    #[arg(long = "finish-detached", hide = true)]
    pub finish_detached: bool,
    // Accepted and ignored: agent-monitor keeps the viewer databases itself, and the viewer
    // reads the tool and package type from the results.
    #[arg(long = "tool_name", hide = true)]
    pub tool_name: Option<String>,
    #[arg(long = "package_type", hide = true)]
    pub package_type: Option<String>,
    #[arg(long = "invocation_cmd", hide = true)]
    pub invocation_cmd: Option<String>,
    #[arg(long = "viewer_checksum", hide = true)]
    pub viewer_checksum: Option<String>,
    #[arg(long = "viewer_db_path", hide = true)]
    pub viewer_db_path: Option<String>,
    #[arg(long = "viewer_db_checksum", hide = true)]
    pub viewer_db_checksum: Option<String>,
}

impl SwampArgs {
    pub fn is_swamp(&self) -> bool {
        self.viewer_uuid.is_some()
    }
}

/// A SWAMP View: checked as any other (nothing is contacted when the input is wrong), then
/// answered at once, finished in the background, or (with `--wait`) in the foreground.
pub fn run(args: Args) -> Outcome {
    let start = Instant::now();
    let progress = Progress::new(start);
    let uuid = args.swamp.viewer_uuid.clone().unwrap_or_default();
    if let Err(e) = validate_name("viewer_uuid", &uuid) {
        return Outcome::usage(e);
    }
    let input = match input::prepare(&args) {
        Ok(i) => i,
        Err(e) => return Outcome::usage(e),
    };
    let Some(db_config) = &args.swamp.db_config else {
        return Outcome::usage(
            "--viewer_uuid needs --db-config FILE (or VRUN_DB_CONFIG): the database of the viewer_instance row",
        );
    };
    if args.swamp.finish_detached {
        return background(&args, db_config, &uuid, &input, &progress);
    }
    let mut row = match Row::open(db_config, &uuid) {
        Ok(r) => r,
        Err(e) if e.is_usage() => return Outcome::usage(e),
        Err(e) => return Outcome::error(e),
    };
    let (monitor, rt) = match crate::connect(&args) {
        Ok(x) => x,
        Err(out) => return out,
    };
    if let Some(wait) = args.wait.map(Duration::from_secs) {
        return rt.block_on(async {
            let mut term = match sigterm() {
                Ok(t) => t,
                Err(out) => return out,
            };
            finish_stoppable(&monitor, &input, &mut row, wait, &progress, &mut term).await
        });
    }
    let out = rt.block_on(crate::flow(&monitor, &input, start, None, &progress));
    match &out {
        Outcome::Launching { .. } => {
            record(&mut row, Status::Launching, &progress);
            if let Err(e) = detach::spawn_finisher() {
                let out = Outcome::error(format!("cannot start the background launchviewer: {e}"));
                record_outcome(&mut row, &out, &progress);
                return out;
            }
        }
        Outcome::Ready { url } => {
            let address = rt.block_on(viewer_address(&monitor, &input.pair, url));
            record(&mut row, Status::Up { url, address: &address }, &progress);
        }
        other => record_outcome(&mut row, other, &progress),
    }
    out
}

/// The background finisher: waits for the viewer, pushes, imports, records the outcome.
///
/// SIGTERM is recorded at any moment of its life, never the default death that leaves the
/// row at "Launching viewer" for good (seen in CI: a stop while the row was still being
/// opened). Its parent starts it with SIGTERM blocked ([`detach::spawn_finisher`]); the
/// handler is in place before it is unblocked here, so a stop sent in between waits.
fn background(args: &Args, db_config: &Path, uuid: &str, input: &input::Input, progress: &Progress) -> Outcome {
    let (monitor, rt) = match crate::connect(args) {
        Ok(x) => x,
        Err(out) => return out,
    };
    let wait = Duration::from_secs(args.swamp.background_wait);
    rt.block_on(async {
        let mut term = match sigterm() {
            Ok(t) => t,
            Err(out) => return out,
        };
        detach::unblock_sigterm();
        let opened = tokio::select! {
            r = open_row(db_config, uuid, OPEN_RETRY) => r,
            _ = term.recv() => {
                let out = stopped();
                if let Ok(mut row) = open_row(db_config, uuid, FINAL_RETRY).await {
                    record_final(&mut row, &out, progress);
                }
                return out;
            }
        };
        let mut row = match opened {
            Ok(r) => r,
            Err(e) if e.is_usage() => return Outcome::usage(e),
            Err(e) => return Outcome::error(e),
        };
        finish_stoppable(&monitor, input, &mut row, wait, progress, &mut term).await
    })
}

fn sigterm() -> Result<Signal, Outcome> {
    signal(SignalKind::terminate()).map_err(|e| Outcome::error(format!("cannot handle SIGTERM: {e}")))
}

fn stopped() -> Outcome {
    Outcome::error("launchviewer was stopped (SIGTERM) before the View finished; View again")
}

/// The background finisher opens its row again for up to `within` ([`OPEN_RETRY`]) when
/// the server does not answer: it starts while the click's call returns, and a server
/// restarting in that moment made it exit at once, leaving the row at "Launching viewer"
/// for good (seen in CI under load). Each attempt blocks this (single-threaded) runtime for
/// at most the connection's timeout; a SIGTERM meanwhile is seen right after it.
async fn open_row(config: &Path, uuid: &str, within: Duration) -> Result<Row, dbrow::DbError> {
    let end = Instant::now() + within;
    loop {
        match Row::open(config, uuid) {
            Err(dbrow::DbError::Connect(_) | dbrow::DbError::Sql(_)) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

/// The row's `vm_ip_address`: the viewer's own address, as SWAMP's was the VM's (the URL is
/// the front door's, when there is one). From the URL when agent-monitor cannot say.
async fn viewer_address(monitor: &Monitor, pair: &vrun_proto::Pair, url: &str) -> String {
    match monitor.available(pair).await {
        Ok(a) if !a.address.is_empty() => a.address,
        _ => dbrow::address_of(url).to_owned(),
    }
}

/// [`finish`], ended early (and recorded) on SIGTERM.
async fn finish_stoppable(
    monitor: &Monitor,
    input: &input::Input,
    row: &mut Row,
    wait: Duration,
    progress: &Progress,
    term: &mut Signal,
) -> Outcome {
    let out = tokio::select! {
        out = finish(monitor, input, row, wait, progress) => return out,
        _ = term.recv() => stopped(),
    };
    record_final(row, &out, progress);
    out
}

/// Waits for the viewer, pushes, imports; records each step and the outcome in the row.
async fn finish(
    monitor: &Monitor,
    input: &input::Input,
    row: &mut Row,
    wait: Duration,
    progress: &Progress,
) -> Outcome {
    let deadline = Instant::now() + wait;
    let mut out = Outcome::error(
        "the viewer kept ending before the results could be imported; ask an administrator to check agent-monitor's log",
    );
    // Start-overs are bounded as in the foreground flow (crate::flow).
    for _ in 0..5 {
        let avail = match monitor
            .ready_or_launch(&input.pair, input.user.as_deref(), Some(deadline), Some(wait), progress)
            .await
        {
            Ok(Waited::Ready(a)) => a,
            Ok(Waited::Launching { state, .. }) => {
                out = Outcome::error(format!("viewer still {state} when the wait ended"));
                break;
            }
            Err(e) => {
                out = Outcome::error(e);
                break;
            }
        };
        record(row, Status::Uploading, progress);
        match push::push(monitor, &avail, input, deadline, progress).await {
            Ok(direct) => {
                // The same URL the foreground path records: the front door's (which also
                // authorises the user there); the address column keeps the viewer's own.
                return match crate::link::printed_url(monitor, &input.pair, input.user.as_deref(), direct, None).await {
                    Ok(url) => {
                        record_within(row, Status::Up { url: &url, address: &avail.address }, FINAL_RETRY, progress);
                        Outcome::Ready { url }
                    }
                    Err(e) => {
                        let out = Outcome::error(e);
                        record_final(row, &out, progress);
                        out
                    }
                };
            }
            Err(PushError::Gone) => record(row, Status::Launching, progress),
            Err(e) => {
                out = Outcome::error(e);
                break;
            }
        }
    }
    record_final(row, &out, progress);
    out
}

/// How long a View's last word is offered to a server that does not take it (restarting,
/// briefly down): nothing writes that row after it, so a lost one stays at "Launching
/// viewer" or "Uploading results" for good. Steps before it are written once.
const FINAL_RETRY: Duration = Duration::from_secs(30);

/// How long the background finisher tries to open its row (see [`open_row`]).
const OPEN_RETRY: Duration = Duration::from_secs(60);

fn record_outcome(row: &mut Row, out: &Outcome, progress: &Progress) {
    record(row, status_of(out), progress)
}

/// The outcome, offered for [`FINAL_RETRY`].
fn record_final(row: &mut Row, out: &Outcome, progress: &Progress) {
    record_within(row, status_of(out), FINAL_RETRY, progress)
}

fn status_of(out: &Outcome) -> Status<'_> {
    match out {
        Outcome::Ready { url } => Status::Up { url, address: dbrow::address_of(url) },
        Outcome::Launching { .. } => Status::Launching,
        Outcome::Error { message, .. } => Status::Failed(message),
    }
}

fn record(row: &mut Row, status: Status, progress: &Progress) {
    record_within(row, status, Duration::ZERO, progress)
}

/// A row that cannot be written does not change the View's outcome (the line on stdout
/// still says it); it is reported to a person at a terminal.
fn record_within(row: &mut Row, status: Status, within: Duration, progress: &Progress) {
    if let Err(e) = row.set_within(status, within) {
        progress.state(&format!("cannot record {status:?} in the viewer_instance row: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::Args;

    #[test]
    fn swamps_invocation_parses_into_launchviewers_options() {
        #[rustfmt::skip]
        let argv = [
            "launchviewer", "--viewer_name", "CodeDX", "--project", "p-1", "--invocation_cmd", "x",
            "--viewer_checksum", "c", "--viewer_db_path", "/d", "--viewer_db_checksum", "e",
            "--viewer_uuid", "vi-1", "--package", "curl", "--tool_name", "cppcheck",
            "--source_archive_path", "/s.zip", "--package_type", "C/C++", "--file_path", "/r1.xml",
            "--file_path=/r2.xml", "--user_uuid=u-1",
        ];
        let a = Args::try_parse_from(argv).unwrap();
        assert_eq!((a.viewer.as_str(), a.project.as_str(), a.package.as_deref()), ("CodeDX", "p-1", Some("curl")));
        assert_eq!(a.results, [std::path::PathBuf::from("/r1.xml"), "/r2.xml".into()]);
        assert_eq!((a.source.unwrap().to_str(), a.user.as_deref()), (Some("/s.zip"), Some("u-1")));
        assert!(a.swamp.is_swamp() && !a.swamp.finish_detached);
        assert_eq!(a.swamp.viewer_db_path.as_deref(), Some("/d"));
        // A value that looks like an option stays the value when given with `=` (as the UDF does).
        let a = Args::try_parse_from(["lv", "--viewer_name=V", "--project=p", "--file_path=f", "--package=--wait=1"])
            .unwrap();
        assert_eq!((a.package.as_deref(), a.wait), (Some("--wait=1"), None));
    }
}
