//! The URL printed for a person: the front door's findings link, signing `--user` in with a
//! single-use token (docs/frontdoor.md). Without a front door (an agent-monitor that runs
//! none, or predates `viewerLogin`), the viewer's direct URL, as before.

use vrun_proto::frontdoor::ViewerLogin;
use vrun_proto::Pair;

use crate::monitor::{Monitor, MonitorError};

/// The link for viewer project `id`, given the viewer's `direct` findings URL.
pub async fn printed_url(
    monitor: &Monitor,
    pair: &Pair,
    user: Option<&str>,
    direct: String,
) -> Result<String, MonitorError> {
    let Some(id) = direct.rsplit_once("/projects/").and_then(|(_, id)| id.parse::<i64>().ok()) else {
        return Ok(direct);
    };
    let req = ViewerLogin { pair: pair.clone(), user: user.map(str::to_owned) };
    match monitor.viewer_login(&req).await {
        Ok(reply) => Ok(reply.findings_link(id).unwrap_or(direct)),
        Err(MonitorError::Fault { err, .. }) if err.code == vrun_proto::FaultCode::UnknownMethod => Ok(direct),
        Err(e) => Err(e),
    }
}
