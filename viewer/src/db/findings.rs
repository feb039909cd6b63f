//! Findings: the common severity scale, filtered/sorted/paged listing, detail, triage.
//!
//! Listing never loads a whole project: the page asks for one page (LIMIT/OFFSET) plus a
//! count, so a 50,000-finding project costs the same memory as a 200-finding one.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
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

    pub fn from_name(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.name() == s)
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

/// Optional filters of the findings table (all must match).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub severity: Option<Severity>,
    pub tool: Option<String>,
    pub status: Option<String>,
    /// Substring of message, file or rule.
    pub text: Option<String>,
}

/// Sort columns; anything else in a query string falls back to severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Severity,
    Tool,
    Rule,
    File,
    Status,
}

impl Sort {
    pub const ALL: [Sort; 5] = [Sort::Severity, Sort::Tool, Sort::Rule, Sort::File, Sort::Status];

    pub fn name(self) -> &'static str {
        match self {
            Sort::Severity => "severity",
            Sort::Tool => "tool",
            Sort::Rule => "rule",
            Sort::File => "file",
            Sort::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Sort {
        Sort::ALL.into_iter().find(|v| v.name() == s).unwrap_or_default()
    }

    /// Column list for ORDER BY; `id` last makes paging deterministic.
    fn columns(self) -> &'static str {
        match self {
            Sort::Severity => "severity {d}, tool {d}, file {d}, line {d}, id {d}",
            Sort::Tool => "tool {d}, severity {d}, id {d}",
            Sort::Rule => "rule {d}, severity {d}, id {d}",
            Sort::File => "file {d}, line {d}, id {d}",
            Sort::Status => "triage_status {d}, severity {d}, id {d}",
        }
    }
}

/// Which way a [`Sort`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

impl Direction {
    /// The word in a query string (`dir=`).
    pub fn name(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }

    pub fn reversed(self) -> Direction {
        match self {
            Direction::Asc => Direction::Desc,
            Direction::Desc => Direction::Asc,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }
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
fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
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
const ROW_COLUMNS: &str = "id, severity, tool, rule, file, line, message, triage_status, present, fingerprint, cwe";

/// One page of rows plus the number of rows matching the filter.
pub fn list(
    conn: &Connection,
    project_id: i64,
    filter: &Filter,
    sort: Sort,
    dir: Direction,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Row>, i64), DbError> {
    let mut sql = String::from(" FROM findings WHERE project_id = ?");
    let mut args: Vec<Value> = vec![project_id.into()];
    if let Some(s) = filter.severity {
        sql.push_str(" AND severity = ?");
        args.push((s as i64).into());
    }
    if let Some(t) = &filter.tool {
        sql.push_str(" AND tool = ?");
        args.push(t.clone().into());
    }
    if let Some(s) = &filter.status {
        sql.push_str(" AND triage_status = ?");
        args.push(s.clone().into());
    }
    if let Some(q) = &filter.text {
        // User text goes into LIKE as data; its own % and _ are escaped.
        let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        sql.push_str(" AND (message LIKE ? ESCAPE '\\' OR file LIKE ? ESCAPE '\\' OR rule LIKE ? ESCAPE '\\')");
        for _ in 0..3 {
            args.push(pattern.clone().into());
        }
    }
    let total: i64 = conn.query_row(&format!("SELECT count(*){sql}"), params_from_iter(args.iter()), |r| r.get(0))?;
    let order = sort.columns().replace("{d}", dir.sql());
    let query = format!("SELECT {ROW_COLUMNS}{sql} ORDER BY {order} LIMIT ? OFFSET ?");
    args.push(limit.into());
    args.push(offset.into());
    let mut stmt = conn.prepare(&query)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), row)?;
    Ok((rows.collect::<Result<_, _>>()?, total))
}

/// Tool names present in a project, for the filter menu.
pub fn tools(conn: &Connection, project_id: i64) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare("SELECT DISTINCT tool FROM findings WHERE project_id = ?1 ORDER BY tool")?;
    let rows = stmt.query_map([project_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

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
}

pub fn detail(conn: &Connection, id: i64) -> Result<Option<Detail>, DbError> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {ROW_COLUMNS}, project_id, (SELECT name FROM projects p WHERE p.id = project_id),
                        category, triage_comment, triage_user, triage_time
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
