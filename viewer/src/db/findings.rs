//! Findings: the common severity scale, a row, detail, triage and its history. Listing
//! (filters, facets, pages) is in `listing.rs`.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{now, DbError};

/// The common severity scale every tool's levels are mapped onto (stored as 1..=5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical = 1,
    High = 2,
    Medium = 3,
    Low = 4,
    Info = 5,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// Case-insensitive: `High` and `HIGH` are `high`.
    pub fn from_name(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.name().eq_ignore_ascii_case(s.trim()))
    }

    pub fn from_rank(r: i64) -> Severity {
        Severity::ALL.into_iter().find(|v| *v as i64 == r).unwrap_or(Severity::Medium)
    }
}

/// Triage states a user can pick (Code Dx's); `new` is the default. Version 1 databases'
/// `confirmed` became `unresolved` (sql/viewer/0002).
pub const TRIAGE_STATUSES: [&str; 7] =
    ["new", "unresolved", "escalated", "ignored", "false_positive", "fixed", "mitigated"];

/// A status as people read it ("false positive").
pub fn status_label(s: &str) -> String {
    s.replace('_', " ")
}

/// One row of the findings table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub severity: Severity,
    pub tool: String,
    pub rule: String,
    pub file: String,
    pub line: i64,
    pub message: String,
    pub status: String,
    /// False when the latest import of this tool no longer reported the finding.
    pub present: bool,
    pub fingerprint: String,
    /// CWE numbers, e.g. ["89"].
    pub cwe: Vec<String>,
}

/// Reads a [`Row`] from the first eleven columns, in [`ROW_COLUMNS`] order.
pub(super) fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        severity: Severity::from_rank(r.get(1)?),
        tool: r.get(2)?,
        rule: r.get(3)?,
        file: r.get(4)?,
        line: r.get(5)?,
        message: r.get(6)?,
        status: r.get(7)?,
        present: r.get(8)?,
        fingerprint: r.get(9)?,
        cwe: r.get::<_, String>(10)?.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect(),
    })
}

/// The columns [`row`] reads, for queries on `findings`.
pub(super) const ROW_COLUMNS: &str =
    "id, severity, tool, rule, file, line, message, triage_status, present, fingerprint, cwe";

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Location {
    pub file: String,
    pub line: i64,
    pub message: String,
    /// The tool's snippet of the region (or its context region), '' when none.
    pub snippet: String,
}

/// Everything the finding page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub row: Row,
    pub project_id: i64,
    pub project_name: String,
    pub category: String,
    pub comment: String,
    pub triage_user: Option<String>,
    pub triage_time: Option<i64>,
    pub locations: Vec<Location>,
    /// The message's markdown form, '' when the tool gave none.
    pub markdown: String,
}

pub fn detail(conn: &Connection, id: i64) -> Result<Option<Detail>, DbError> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {ROW_COLUMNS}, project_id, (SELECT name FROM projects p WHERE p.id = project_id),
                        category, triage_comment, triage_user, triage_time, markdown
                 FROM findings WHERE id = ?1"
            ),
            [id],
            |r| {
                Ok(Detail {
                    row: row(r)?,
                    project_id: r.get(11)?,
                    project_name: r.get(12)?,
                    category: r.get(13)?,
                    comment: r.get(14)?,
                    triage_user: r.get(15)?,
                    triage_time: r.get(16)?,
                    locations: Vec::new(),
                    markdown: r.get(17)?,
                })
            },
        )
        .optional()?;
    let Some(mut d) = found else { return Ok(None) };
    let mut stmt =
        conn.prepare("SELECT file, line, message, snippet FROM locations WHERE finding_id = ?1 ORDER BY ord")?;
    let locs = stmt.query_map([id], |r| {
        Ok(Location { file: r.get(0)?, line: r.get(1)?, message: r.get(2)?, snippet: r.get(3)? })
    })?;
    d.locations = locs.collect::<Result<_, _>>()?;
    Ok(Some(d))
}

/// Records a triage decision; false when the finding does not exist.
/// `status` must be one of [`TRIAGE_STATUSES`] (the schema enforces it too).
/// Each decision is also appended to the finding's history.
pub fn triage(conn: &Connection, id: i64, status: &str, comment: &str, user: &str) -> Result<bool, DbError> {
    let t = now();
    let n = conn.execute(
        "UPDATE findings SET triage_status = ?2, triage_comment = ?3, triage_user = ?4, triage_time = ?5
         WHERE id = ?1",
        params![id, status, comment, user, t],
    )?;
    if n > 0 {
        conn.execute(
            "INSERT INTO triage_history (finding_id, time, user, status, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, t, user, status, comment],
        )?;
    }
    Ok(n > 0)
}

/// A finding's code flows: (flow number, steps), in order.
pub fn flows(conn: &Connection, id: i64) -> Result<Vec<(i64, Vec<Location>)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT flow, file, line, message, snippet FROM flow_steps WHERE finding_id = ?1 ORDER BY flow, step",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((r.get::<_, i64>(0)?, Location { file: r.get(1)?, line: r.get(2)?, message: r.get(3)?, snippet: r.get(4)? }))
    })?;
    let mut out: Vec<(i64, Vec<Location>)> = Vec::new();
    for row in rows {
        let (flow, loc) = row?;
        match out.last_mut() {
            Some((f, steps)) if *f == flow => steps.push(loc),
            _ => out.push((flow, vec![loc])),
        }
    }
    Ok(out)
}

/// One entry of a finding's triage history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub time: i64,
    pub user: String,
    pub status: String,
    pub comment: String,
}

/// A finding's triage history, oldest first.
pub fn history(conn: &Connection, id: i64) -> Result<Vec<HistoryEntry>, DbError> {
    let mut stmt =
        conn.prepare("SELECT time, user, status, comment FROM triage_history WHERE finding_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map([id], |r| {
        Ok(HistoryEntry { time: r.get(0)?, user: r.get(1)?, status: r.get(2)?, comment: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
