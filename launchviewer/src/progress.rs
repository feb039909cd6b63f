//! Progress for people: `[  4.2s] booting` on stderr at each change.
//!
//! Only when stderr is a terminal: the stored procedure captures both streams, and a
//! stream of progress lines there would only bury the one line that matters.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    start: Instant,
    enabled: bool,
    last: Mutex<String>,
}

impl Progress {
    pub fn new(start: Instant) -> Progress {
        Progress { start, enabled: std::io::stderr().is_terminal(), last: Mutex::new(String::new()) }
    }

    /// Reports `what` unless it is what was reported last (polls repeat the same state).
    pub fn state(&self, what: &str) {
        if !self.enabled {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last != what {
            eprintln!("[{:5.1}s] {what}", self.start.elapsed().as_secs_f64());
            *last = what.to_owned();
        }
    }
}
