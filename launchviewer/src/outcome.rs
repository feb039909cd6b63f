//! The one line on stdout and the exit code: the whole contract with the caller
//! (docs/launchviewer.md). A stored procedure parses this, so each outcome has exactly one
//! rendering and messages are always a single line.

use std::fmt::Display;

/// The viewer is up and the results are imported: the URL is printed.
pub const EXIT_READY: u8 = 0;
/// Something went wrong at run time (agent-monitor, the viewer, the import, the wait ran out).
pub const EXIT_ERROR: u8 = 1;
/// The invocation itself is wrong (arguments, names, files); nothing was contacted.
pub const EXIT_USAGE: u8 = 2;
/// A viewer is being launched; ask again later (only without `--wait`).
pub const EXIT_LAUNCHING: u8 = 3;

/// How the one line is written: `READY <url>` and friends, or one JSON object (`--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn json_if(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Text
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ready { url: String },
    Launching { state: String, generation: i64 },
    Error { message: String, exit_code: u8 },
}

impl Outcome {
    /// A run-time failure (exit 1).
    pub fn error(message: impl Display) -> Outcome {
        Outcome::Error { message: one_line(&message.to_string()), exit_code: EXIT_ERROR }
    }

    /// A bad invocation (exit 2).
    pub fn usage(message: impl Display) -> Outcome {
        Outcome::Error { message: one_line(&message.to_string()), exit_code: EXIT_USAGE }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Ready { .. } => EXIT_READY,
            Outcome::Launching { .. } => EXIT_LAUNCHING,
            Outcome::Error { exit_code, .. } => *exit_code,
        }
    }

    /// The stdout line, without its newline.
    pub fn render(&self, format: Format) -> String {
        if format == Format::Json {
            let v = match self {
                Outcome::Ready { url } => serde_json::json!({ "status": "ready", "url": url }),
                Outcome::Launching { state, generation } => {
                    serde_json::json!({ "status": "launching", "state": state, "generation": generation })
                }
                Outcome::Error { message, .. } => serde_json::json!({ "status": "error", "message": message }),
            };
            return v.to_string();
        }
        match self {
            Outcome::Ready { url } => format!("READY {url}"),
            Outcome::Launching { state, .. } => format!("LAUNCHING {state}"),
            Outcome::Error { message, .. } => format!("ERROR {message}"),
        }
    }
}

/// Causes from other programs may span lines; the contract is one line, and control
/// characters would garble the caller's log.
fn one_line(s: &str) -> String {
    let joined = s.trim().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    joined.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_renderings() {
        let r = Outcome::Ready { url: "http://h:1/proxy-x/projects/2".into() };
        assert_eq!(r.render(Format::Text), "READY http://h:1/proxy-x/projects/2");
        assert_eq!(r.exit_code(), 0);
        let l = Outcome::Launching { state: "booting".into(), generation: 4 };
        assert_eq!(l.render(Format::Text), "LAUNCHING booting");
        let v: serde_json::Value = serde_json::from_str(&l.render(Format::Json)).unwrap();
        assert_eq!(v, serde_json::json!({"status": "launching", "state": "booting", "generation": 4}));
        assert_eq!(l.exit_code(), 3);
    }

    #[test]
    fn errors_are_one_line() {
        let e = Outcome::error("first\n  second\r\n\nthird\tx");
        assert_eq!(e.render(Format::Text), "ERROR first; second; third x");
        assert_eq!(Outcome::usage("x").exit_code(), 2);
        let v: serde_json::Value = serde_json::from_str(&e.render(Format::Json)).unwrap();
        assert_eq!(v["status"], "error");
    }
}
