//! The lifecycle of a viewer instance.
//!
//! ```text
//! launching → booting → ready → stopping → stopped
//!      └─────────┴────────┴────────┴──────→ failed
//! ```
//! Moves go forward only (skipping is allowed: a job may report `ready` straight from
//! `launching`). `stopped` and `failed` are terminal: a terminal instance no longer holds its
//! pair, and a new launch creates a new instance with a higher generation.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewerState {
    Launching,
    Booting,
    Ready,
    Stopping,
    Stopped,
    Failed,
}

impl ViewerState {
    pub const ALL: [ViewerState; 6] = [
        ViewerState::Launching,
        ViewerState::Booting,
        ViewerState::Ready,
        ViewerState::Stopping,
        ViewerState::Stopped,
        ViewerState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ViewerState::Launching => "launching",
            ViewerState::Booting => "booting",
            ViewerState::Ready => "ready",
            ViewerState::Stopping => "stopping",
            ViewerState::Stopped => "stopped",
            ViewerState::Failed => "failed",
        }
    }

    /// Terminal states do not hold the (project, viewer) lock.
    pub fn is_terminal(self) -> bool {
        matches!(self, ViewerState::Stopped | ViewerState::Failed)
    }

    /// Whether a job may move an instance from `self` to `to`. Re-reporting the current state
    /// is allowed (idempotent retries), except from a terminal state.
    pub fn can_move_to(self, to: ViewerState) -> bool {
        if self.is_terminal() {
            return false;
        }
        to == ViewerState::Failed || to >= self
    }
}

impl fmt::Display for ViewerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?} (expected one of launching, booting, ready, stopping, stopped, failed)")]
pub struct UnknownState(pub String);

impl FromStr for ViewerState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ViewerState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::ViewerState::*;
    use super::*;

    #[test]
    fn forward_moves_only() {
        assert!(Launching.can_move_to(Booting));
        assert!(Launching.can_move_to(Ready));
        assert!(Ready.can_move_to(Ready));
        assert!(Ready.can_move_to(Stopping));
        assert!(Booting.can_move_to(Failed));
        assert!(!Ready.can_move_to(Booting));
        assert!(!Stopping.can_move_to(Ready));
        assert!(!Stopped.can_move_to(Failed));
        assert!(!Failed.can_move_to(Launching));
    }

    #[test]
    fn round_trips_words() {
        for s in ViewerState::ALL {
            assert_eq!(s.as_str().parse::<ViewerState>(), Ok(s));
        }
        assert!("READY".parse::<ViewerState>().is_err());
    }
}
