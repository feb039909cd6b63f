//! Results reach a viewer generation once, however many Views of them arrive together.
//!
//! agent-monitor's `claimPush` serialises the decision: the first caller gets `claimed` and
//! uploads, the others get `pushing` and wait until it says `done` (or `claimed` again,
//! when the uploader failed or vanished and its claim expired; then they upload).

use std::time::Instant;

use vrun_proto::methods::{Availability, ClaimPush, PushDone, PushStatus};

use crate::codedx::{CodeDx, CodeDxError};
use crate::input::Input;
use crate::monitor::{Monitor, MonitorError};
use crate::progress::Progress;
use crate::POLL_EVERY;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The generation ended under the push; the caller starts over with a new one.
    #[error("the viewer instance ended during the upload")]
    Gone,
    #[error(transparent)]
    Monitor(MonitorError),
    #[error(transparent)]
    Viewer(#[from] CodeDxError),
    #[error("another launchviewer has been uploading these results for the whole wait; View again later")]
    OtherUploader,
}

impl From<MonitorError> for PushError {
    fn from(e: MonitorError) -> PushError {
        if e.is_gone() {
            PushError::Gone
        } else {
            PushError::Monitor(e)
        }
    }
}

/// Makes sure the results are imported into `avail`'s viewer; returns the findings URL.
pub async fn push(
    monitor: &Monitor,
    avail: &Availability,
    input: &Input,
    deadline: Instant,
    progress: &Progress,
) -> Result<String, PushError> {
    let viewer = CodeDx::new(avail)?;
    let claim = ClaimPush {
        pair: input.pair.clone(),
        generation: avail.generation,
        checksum: input.checksum.clone(),
        package: Some(input.package.clone()),
    };
    loop {
        match monitor.claim_push(&claim).await? {
            PushStatus::Claimed => return upload_claimed(monitor, &viewer, &claim, input, deadline, progress).await,
            PushStatus::Done => {
                progress.state("results already imported");
                // Usually a lookup; but if a user deleted the project in the viewer since,
                // the click means "show me these results", so they go in again.
                let found = viewer.retry_find(&input.package, deadline).await?;
                let id = match found {
                    Some(id) => id,
                    None => viewer.upload(input, deadline, progress).await?,
                };
                return Ok(viewer.project_url(id));
            }
            PushStatus::Pushing => {
                progress.state("waiting for another launchviewer's upload of the same results");
                if Instant::now() + POLL_EVERY > deadline {
                    return Err(PushError::OtherUploader);
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }
}

async fn upload_claimed(
    monitor: &Monitor,
    viewer: &CodeDx,
    claim: &ClaimPush,
    input: &Input,
    deadline: Instant,
    progress: &Progress,
) -> Result<String, PushError> {
    let done =
        |ok| PushDone { pair: claim.pair.clone(), generation: claim.generation, checksum: claim.checksum.clone(), ok };
    match viewer.upload(input, deadline, progress).await {
        Ok(id) => {
            // The findings are in whatever agent-monitor answers; a lost `done` only means a
            // later click re-imports (merged by fingerprint), so it does not fail the View.
            if let Err(e) = monitor.push_done(&done(true)).await {
                progress.state(&format!("could not record the push as done: {e}"));
            }
            Ok(viewer.project_url(id))
        }
        Err(e) => {
            // Release the claim at once so a waiting click can try instead of waiting for
            // the claim to expire.
            let _ = monitor.push_done(&done(false)).await;
            Err(e.into())
        }
    }
}
