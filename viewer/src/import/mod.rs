//! Importing analysis results into a project: format detection, the parsers, and the
//! all-or-nothing write.
//!
//! One import job = one SQLite transaction over every file of the upload. Parsers stream:
//! they hand each finding to a [`Sink`] as soon as it is complete, and the database sink
//! upserts it right away, so memory stays flat however large the file (see `sink.rs`).
//! Any error — malformed input, an unsupported file, too many findings — aborts the
//! transaction, so the project is exactly as it was before the job.

pub mod sarif;
pub mod scarf;
mod sink;
pub mod sources;
pub mod synth;
mod zip;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use rusqlite::{Connection, TransactionBehavior};

use crate::config::Limits;
use crate::db::findings::{Location, Severity};
use crate::db::{now, DbError};

/// Why an import job failed; the text becomes the job's `message`.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {reason}")]
    Malformed { file: String, reason: String },
    #[error("{file}: unsupported file: {what}")]
    Unsupported { file: String, what: &'static str },
    #[error("more than {0} findings in one import")]
    TooManyFindings(u64),
    #[error("the upload has no results file (SARIF 2.1.0 JSON or SCARF XML)")]
    NoResults,
    #[error("project {0} does not exist (deleted while the import was queued?)")]
    ProjectGone(i64),
    #[error("internal error: {0}")]
    Db(#[from] DbError),
    #[error("internal error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> ImportError {
        ImportError::Db(e.into())
    }
}

/// One finding as a parser produces it, before fingerprinting.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub tool: String,
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    /// Primary location; empty / 0 when the tool gave none.
    pub file: String,
    pub line: i64,
    pub message: String,
    /// The message's markdown form (SARIF `message.markdown`), '' when none.
    pub markdown: String,
    /// Every location the tool reported, primary first.
    pub locations: Vec<Location>,
    /// What the tool says identifies the finding across runs (SARIF `fingerprints` or
    /// `partialFingerprints`, as text); None when it says nothing.
    pub identity: Option<String>,
    /// Line-independent context of the primary location (its snippet), '' when unknown.
    pub context: String,
    /// CWE numbers ("89"), from the rule's tags and taxa or SCARF's CweId.
    pub cwe: Vec<String>,
    /// Code flows (SARIF threadFlows), each a list of steps.
    pub flows: Vec<Vec<Location>>,
}

/// Where parsers put findings. Implemented by the database writer and, in tests, by
/// closures.
pub trait Sink {
    fn finding(&mut self, f: Finding) -> Result<(), ImportError>;
}

impl<F: FnMut(Finding) -> Result<(), ImportError>> Sink for F {
    fn finding(&mut self, f: Finding) -> Result<(), ImportError> {
        self(f)
    }
}

/// What a part of an upload is, judged by its first bytes (never by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sarif,
    Scarf,
    /// A zip (the source archive Code Dx clients send as `file2`): see `sources.rs`.
    Zip,
    Unknown(&'static str),
}

pub fn sniff(head: &[u8]) -> Kind {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = head.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &head[i..]).unwrap_or(&[]);
    match first {
        [b'{', ..] => Kind::Sarif,
        [b'<', ..] => Kind::Scarf,
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Kind::Zip,
        [0x1f, 0x8b, ..] => Kind::Unknown("gzip-compressed; upload the uncompressed SARIF or SCARF file"),
        [] => Kind::Unknown("the file is empty"),
        _ => Kind::Unknown("neither SARIF JSON nor SCARF XML"),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// One uploaded part: the client's name for it (for messages) and where it was saved.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub path: PathBuf,
}

/// What a completed import did; becomes the job's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub results_files: usize,
    pub findings: u64,
    pub new: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "imported {} findings ({} new) from {} results file(s)", self.findings, self.new, self.results_files)
    }
}

/// Imports every upload into `project_id` in one transaction.
pub fn import(
    conn: &mut Connection,
    project_id: i64,
    job_id: &str,
    uploads: &[Upload],
    limits: &Limits,
) -> Result<Summary, ImportError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if crate::db::projects::get(&tx, project_id)?.is_none() {
        return Err(ImportError::ProjectGone(project_id));
    }
    tx.execute(
        "INSERT INTO imports (project_id, job_id, time) VALUES (?1, ?2, ?3)",
        rusqlite::params![project_id, job_id, now()],
    )?;
    let import_id = tx.last_insert_rowid();
    let mut sink = sink::DbSink::new(&tx, project_id, import_id, limits)?;
    let mut results_files = 0;
    let mut archives = Vec::new();
    for up in uploads {
        let mut reader = BufReader::with_capacity(64 * 1024, std::fs::File::open(&up.path)?);
        let kind = sniff(reader.fill_buf()?);
        let open = || open_without_bom(&up.path);
        let malformed = |reason: String| ImportError::Malformed { file: up.name.clone(), reason };
        match kind {
            Kind::Sarif => sarif::parse(&open, &mut sink).map_err(|e| e.into_import_error(malformed))?,
            Kind::Scarf => scarf::parse(reader, limits, &mut sink).map_err(|e| e.into_import_error(malformed))?,
            Kind::Zip => {
                archives.push(up);
                continue;
            }
            Kind::Unknown(what) => return Err(ImportError::Unsupported { file: up.name.clone(), what }),
        }
        results_files += 1;
    }
    if results_files == 0 {
        return Err(ImportError::NoResults);
    }
    let (findings, new) = sink.finish()?;
    // After the findings, so that the files they name are known.
    for up in archives {
        sources::store(&tx, project_id, &up.name, &up.path)?;
    }
    tx.commit()?;
    Ok(Summary { results_files, findings, new })
}

/// The file, past a UTF-8 byte-order mark if it starts with one (JSON has none; some
/// Windows tools write it anyway).
fn open_without_bom(path: &std::path::Path) -> std::io::Result<BufReader<std::fs::File>> {
    let mut r = BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    if r.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        r.consume(3);
    }
    Ok(r)
}

/// A parser's failure: either the input is bad (reason text) or the sink refused.
#[derive(Debug)]
pub enum ParseError {
    Input(String),
    Sink(ImportError),
}

impl ParseError {
    fn into_import_error(self, malformed: impl FnOnce(String) -> ImportError) -> ImportError {
        match self {
            ParseError::Input(reason) => malformed(reason),
            ParseError::Sink(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"\xEF\xBB\xBF  \n{\"version\""), Kind::Sarif);
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><AnalyzerReport"), Kind::Scarf);
        assert_eq!(sniff(b"PK\x03\x04rest"), Kind::Zip);
        assert!(matches!(sniff(b"\x1f\x8b\x08"), Kind::Unknown(w) if w.contains("gzip")));
        assert!(matches!(sniff(b""), Kind::Unknown(_)));
        assert!(matches!(sniff(b"hello"), Kind::Unknown(_)));
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("日本語".to_string(), 4), "日");
        assert_eq!(clip("abc".to_string(), 10), "abc");
    }
}
