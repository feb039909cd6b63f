//! Event lines from the VM's serial log (see docs/image.md, "Serial port").

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RunShStart,
    DbRestored,
    DbFresh,
    /// `VIEWERUP <address>:<port>` as the guest sees it.
    ViewerUp(String),
    ViewerDown,
    Error(String),
    DbSaved(String),
    TimerShutdown,
}

/// Parses one serial line; `None` for console noise.
pub fn parse(line: &str) -> Option<Event> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    Some(match word {
        "RUNSHSTART" => Event::RunShStart,
        "DBRESTORED" => Event::DbRestored,
        "DBFRESH" => Event::DbFresh,
        "VIEWERUP" if !rest.is_empty() => Event::ViewerUp(rest.to_string()),
        "VIEWERDOWN" => Event::ViewerDown,
        "VRUNERROR" => Event::Error(rest.chars().take(500).collect()),
        "DBSAVED" if !rest.is_empty() => Event::DbSaved(rest.to_string()),
        "TIMERSHUTDOWN" => Event::TimerShutdown,
        _ => return None,
    })
}

/// Follows a growing log file, yielding complete lines' events.
pub struct SerialTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// The last few lines, for failure messages.
    pub recent: std::collections::VecDeque<String>,
}

impl SerialTail {
    pub fn new(path: PathBuf) -> SerialTail {
        SerialTail { path, offset: 0, partial: Vec::new(), recent: Default::default() }
    }

    pub fn poll(&mut self) -> Vec<Event> {
        let Ok(mut f) = File::open(&self.path) else { return Vec::new() };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else { return Vec::new() };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut events = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if self.recent.len() == 20 {
                self.recent.pop_front();
            }
            self.recent.push_back(line.clone());
            if let Some(e) = parse(&line) {
                events.push(e);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_lines_and_ignores_noise() {
        assert_eq!(parse("VIEWERUP 0.0.0.0:8080\r"), Some(Event::ViewerUp("0.0.0.0:8080".into())));
        assert_eq!(parse("VRUNERROR run.json missing"), Some(Event::Error("run.json missing".into())));
        assert_eq!(parse("DBSAVED abc"), Some(Event::DbSaved("abc".into())));
        assert_eq!(parse("[    1.0] VIEWERUP x"), None);
        assert_eq!(parse("VIEWERUP"), None);
        assert_eq!(parse("vrun-init: loading modules"), None);
    }

    #[test]
    fn tail_yields_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serial.log");
        let mut t = SerialTail::new(p.clone());
        assert!(t.poll().is_empty(), "missing file is no event");
        std::fs::write(&p, "noise\nRUNSHSTART\r\nVIEWER").unwrap();
        assert_eq!(t.poll(), [Event::RunShStart]);
        std::fs::write(&p, "noise\nRUNSHSTART\r\nVIEWERUP 0.0.0.0:8080\r\n").unwrap();
        assert_eq!(t.poll(), [Event::ViewerUp("0.0.0.0:8080".into())]);
    }
}
