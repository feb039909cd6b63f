//! The URL printed for a person: the front door's findings link, signing `--user` in with a
//! single-use token (docs/frontdoor.md). Without a front door (an agent-monitor that runs
//! none, or predates `viewerLogin`), the viewer's direct URL, as before.
//!
//! The sign-in is asked for while the results upload ([`Login::ask`] beside the push, so a
//! click does not wait for one more agent-monitor commit after the import) and asked again
//! if the upload took long enough to eat into the token's lifetime ([`FRESH_FOR`]).

use std::time::{Duration, Instant};

use vrun_proto::frontdoor::{LoginReply, ViewerLogin};
use vrun_proto::Pair;

use crate::monitor::{Monitor, MonitorError};

/// A token older than this when the import ends is asked for again: a person gets a link
/// with nearly its whole lifetime left however long the upload took.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// What `viewerLogin` answered, and when.
#[derive(Debug)]
pub struct Login {
    at: Instant,
    reply: Result<Option<LoginReply>, MonitorError>,
}

impl Login {
    /// Asks agent-monitor to sign `user` in to `pair`'s viewer. `None` inside: an
    /// agent-monitor without `viewerLogin` (the direct URL is printed).
    pub async fn ask(monitor: &Monitor, pair: &Pair, user: Option<&str>) -> Login {
        let req = ViewerLogin { pair: pair.clone(), user: user.map(str::to_owned) };
        let reply = match monitor.viewer_login(&req).await {
            Ok(reply) => Ok(Some(reply)),
            Err(MonitorError::Fault { err, .. }) if err.code == vrun_proto::FaultCode::UnknownMethod => Ok(None),
            Err(e) => Err(e),
        };
        Login { at: Instant::now(), reply }
    }

    fn fresh(&self) -> bool {
        self.at.elapsed() <= FRESH_FOR
    }
}

/// The link for viewer project `id`, given the viewer's `direct` findings URL and the
/// sign-in asked for beside the upload (asked again if it failed or is no longer fresh).
pub async fn printed_url(
    monitor: &Monitor,
    pair: &Pair,
    user: Option<&str>,
    direct: String,
    early: Option<Login>,
) -> Result<String, MonitorError> {
    let Some(id) = direct.rsplit_once("/projects/").and_then(|(_, id)| id.parse::<i64>().ok()) else {
        return Ok(direct);
    };
    let login = match early {
        Some(l) if l.fresh() && l.reply.is_ok() => l,
        _ => Login::ask(monitor, pair, user).await,
    };
    match login.reply? {
        Some(reply) => Ok(reply.findings_link(id).unwrap_or(direct)),
        None => Ok(direct),
    }
}
