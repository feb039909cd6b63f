//! What the DomainMonitor decides about one of its node's domains. The node is the
//! authority on whether a job lives (its run lock, [`crate::joblock`]); agent-monitor's
//! answer to the inventory says whether the instance still holds its pair.

use std::time::Duration;

/// What to do with a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its job lives and its instance holds its pair, or it is too early to tell.
    Keep,
    /// Power it off, hand over its database, remove it; the reason goes to agent-monitor.
    Salvage(String),
}

/// `job_alive`: a vruntask holds the domain's run lock on this node. `live`: agent-monitor
/// still holds the instance live. `not_live_for`: how long agent-monitor has said it is
/// not. A job that died is salvaged at once (nothing else will ever save its database); a
/// job that lives on after its instance ended gets `grace` to tear its VM down itself.
pub fn judge(node: &str, job_alive: bool, live: bool, not_live_for: Duration, grace: Duration) -> Verdict {
    if !job_alive {
        return Verdict::Salvage(format!("its job is gone (no vruntask on node {node} holds its run lock)"));
    }
    if !live && not_live_for >= grace {
        return Verdict::Salvage(format!(
            "its instance ended {} s ago and its job has not removed it",
            not_live_for.as_secs()
        ));
    }
    Verdict::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_job_is_salvaged_at_once_a_live_one_only_after_the_grace() {
        let (s0, g) = (Duration::ZERO, Duration::from_secs(60));
        assert!(matches!(judge("n1", false, true, s0, g), Verdict::Salvage(r) if r.contains("job is gone")));
        assert_eq!(judge("n1", true, true, s0, g), Verdict::Keep);
        assert_eq!(judge("n1", true, false, Duration::from_secs(59), g), Verdict::Keep, "its job is tearing down");
        assert!(matches!(judge("n1", true, false, g, g), Verdict::Salvage(r) if r.contains("ended 60 s ago")));
    }
}
