//! `launchviewer`: what a database stored procedure runs when a user clicks View.
//!
//! It makes sure the (project, viewer) pair has a running viewer, pushes the results into
//! it exactly once per viewer generation however many clicks arrive together, and prints
//! one line saying where the findings are (or why not). The contract of that line and of
//! the exit codes is in docs/launchviewer.md; the caller parses it, so it never changes
//! shape: everything meant for humans goes to stderr, and only when that is a terminal.
//!
//! SWAMP's launchviewer published the viewer URL before the upload had finished and
//! polled for ten minutes in fixed 10 s steps; here the URL is printed only after the
//! viewer reports the import `completed`, and polling is cheap (20 ms growing to 100 ms).
//!
//! # Layout
//! - [`input`]: validates names, reads the results (and source) file, tells SARIF from
//!   SCARF and computes the push checksum, all before anyone is contacted.
//! - [`monitor`]: the agent-monitor side: ask, launch, and wait for `ready`.
//! - [`codedx`]: the viewer's Code Dx API: find or create the project, upload, follow the
//!   import job; transient failures are retried with backoff inside the time budget.
//! - [`link`]: the printed URL: the front door's link that signs the user in.
//! - [`push`]: the once-only push through agent-monitor's `claimPush`/`pushDone`.
//! - [`outcome`]: the one stdout line (text or JSON) and the exit codes.
//! - [`progress`]: elapsed-time state lines on stderr for people at a terminal.
//! - [`swamp`]: SWAMP's invocation (`--viewer_uuid` …): answer at once, finish in the
//!   background ([`detach`]), record progress in the `viewer_instance` row ([`dbrow`]).

pub mod codedx;
pub mod dbrow;
pub mod detach;
pub mod input;
pub mod link;
pub mod monitor;
pub mod outcome;
pub mod progress;
pub mod push;
pub mod swamp;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

pub use outcome::Outcome;

use crate::monitor::{Monitor, Waited};
use crate::progress::Progress;
use crate::push::PushError;

/// Without `--wait`, an already running viewer still gets the results; this bounds that
/// upload so a click never hangs the stored procedure for long.
pub const UPLOAD_BUDGET_WITHOUT_WAIT: Duration = Duration::from_secs(30);

/// How often agent-monitor (or the viewer's import job) is asked again while waiting, at
/// most: its answers are cheap, so a quick poll shortens the wait a user sees.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// Poll pauses that start short and double up to [`POLL_EVERY`]: most waits end soon after
/// they begin (an import of a few MB takes a fraction of a second; a VM reports ready just
/// after its viewer listens), and a fixed 250 ms pause added up to half a second to a View.
/// (An isViewerAvailable costs agent-monitor about 60 µs: ten a second is nothing.)
#[derive(Debug, Clone)]
pub struct Pacer {
    next: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer { next: Duration::from_millis(20) }
    }
}

impl Pacer {
    /// The pause before the next poll.
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(POLL_EVERY);
        now
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "launchviewer",
    version,
    about = "Start (or find) a project's viewer, push results into it, print its URL"
)]
pub struct Args {
    /// SWAMP project (letters, digits, '_' and '-').
    #[arg(long)]
    pub project: String,
    /// Viewer name, e.g. CodeDX.
    #[arg(long, alias = "viewer_name")]
    pub viewer: String,
    /// Results to show: SARIF 2.1.0 (JSON) or SCARF (XML); repeat for several files in one View.
    #[arg(long, alias = "file_path", required = true)]
    pub results: Vec<PathBuf>,
    /// Source archive (zip) uploaded next to the results.
    #[arg(long, alias = "source_archive_path")]
    pub source: Option<PathBuf>,
    /// Code Dx project name the results go into. [default: the results file name without its last extension]
    #[arg(long)]
    pub package: Option<String>,
    /// The user who clicked View (becomes an authorised user of a newly launched viewer).
    #[arg(long, alias = "user_uuid")]
    pub user: Option<String>,
    /// Wait up to this many seconds for the viewer and the import; without it, a viewer that
    /// is not up yet is launched and `LAUNCHING <state>` is printed at once.
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// agent-monitor's XML-RPC endpoint.
    #[arg(long, env = "AGENT_MONITOR_URL", default_value = "http://127.0.0.1:8085/RPC2")]
    pub agent_monitor: String,
    /// The launcher role's secret (agent-monitor writes it to `<state>/secrets/launcher.secret`).
    #[arg(long, env = "AGENT_MONITOR_SECRET_FILE", default_value = "var/agent-monitor/secrets/launcher.secret")]
    pub secret_file: PathBuf,
    /// Print one JSON object instead of one text line.
    #[arg(long)]
    pub json: bool,
    /// SWAMP's `launch_viewer` invocation (docs/launchviewer.md).
    #[command(flatten)]
    pub swamp: swamp::SwampArgs,
}

/// Runs one View click to its outcome. Never panics on bad input or unreachable peers:
/// every failure becomes an [`Outcome::Error`] with a one-line message.
pub fn run(args: Args) -> Outcome {
    if args.swamp.is_swamp() {
        return swamp::run(args);
    }
    let start = Instant::now();
    let progress = Progress::new(start);
    let input = match input::prepare(&args) {
        Ok(i) => i,
        Err(e) => return Outcome::usage(e),
    };
    let (monitor, rt) = match connect(&args) {
        Ok(x) => x,
        Err(out) => return out,
    };
    let wait = args.wait.map(Duration::from_secs);
    rt.block_on(flow(&monitor, &input, start, wait, &progress))
}

/// agent-monitor's client and the runtime a View runs on, or the outcome that says why not.
pub(crate) fn connect(args: &Args) -> Result<(Monitor, tokio::runtime::Runtime), Outcome> {
    let monitor = Monitor::new(&args.agent_monitor, &args.secret_file).map_err(Outcome::usage)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Outcome::error(format!("cannot start the async runtime: {e}")))?;
    Ok((monitor, rt))
}

/// Ready the viewer, then push; if the instance ends under the push, start over (a new
/// generation needs its own push) while the budget lasts.
pub(crate) async fn flow(
    monitor: &Monitor,
    input: &input::Input,
    start: Instant,
    wait: Option<Duration>,
    progress: &Progress,
) -> Outcome {
    let deadline = wait.map(|w| start + w);
    // A bound on start-overs: each one needs an instance that became ready and then ended,
    // so more than a few within one click means something is wrong, not slow.
    for _ in 0..5 {
        let avail = match monitor.ready_or_launch(&input.pair, input.user.as_deref(), deadline, wait, progress).await {
            Ok(Waited::Ready(a)) => a,
            Ok(Waited::Launching { state, generation }) => return Outcome::Launching { state, generation },
            Err(e) => return Outcome::error(e),
        };
        let push_deadline = deadline.unwrap_or_else(|| Instant::now() + UPLOAD_BUDGET_WITHOUT_WAIT);
        // The sign-in beside the upload: agent-monitor answers it while the viewer imports.
        let (pushed, login) = tokio::join!(
            push::push(monitor, &avail, input, push_deadline, progress),
            link::Login::ask(monitor, &input.pair, input.user.as_deref())
        );
        match pushed {
            Ok(url) => {
                return match link::printed_url(monitor, &input.pair, input.user.as_deref(), url, Some(login)).await {
                    Ok(url) => Outcome::Ready { url },
                    Err(e) => Outcome::error(e),
                }
            }
            Err(PushError::Gone) => progress.state("viewer instance ended during the upload; starting over"),
            Err(e) => return Outcome::error(e),
        }
    }
    Outcome::error("the viewer kept ending before the results could be imported; ask an administrator to check agent-monitor's log")
}
