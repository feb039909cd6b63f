//! The findings table: filters, sort orders, keyset pages and facet counts.
//!
//! Listing never loads a whole project. Pages are keyset pages: the next page starts after
//! the sort key of the last row shown (`(col, ..., id) > (?, ..., ?)`, row values), so page
//! 250 of 50,000 findings costs what page 1 does. A jump to page N (and the first request
//! of a page number) uses OFFSET, bounded to the pages that exist.

use base64::Engine;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::findings::{row, Row, Severity, ROW_COLUMNS};
use super::DbError;

/// Between the last two analyses of a finding's tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First reported by the latest import of its tool.
    New,
    /// Reported by the latest import and by an earlier one.
    Present,
    /// Not in the latest import of its tool.
    Gone,
}

impl Change {
    pub const ALL: [Change; 3] = [Change::New, Change::Present, Change::Gone];
    pub fn name(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Present => "present",
            Change::Gone => "gone",
        }
    }
    pub fn from_name(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s.trim()))
    }
    fn sql(self) -> &'static str {
        match self {
            Change::New => "present = 1 AND first_import = last_import",
            Change::Present => "present = 1 AND first_import <> last_import",
            Change::Gone => "present = 0",
        }
    }
}

/// Optional filters of the findings table (all must match).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub severity: Option<Severity>,
    pub tool: Option<String>,
    pub status: Option<String>,
    pub rule: Option<String>,
    /// A CWE number ("89").
    pub cwe: Option<String>,
    /// Path prefix of the primary location.
    pub path: Option<String>,
    pub change: Option<Change>,
    /// Substring of message, file or rule; case-insensitive beyond ASCII.
    pub text: Option<String>,
    /// A filter value that names nothing (`severity=bogus`): no finding matches.
    pub matches_nothing: bool,
}

/// LIKE pattern for `prefix…` with the user's own `%`, `_` and `\` taken literally.
fn like_prefix(s: &str) -> String {
    format!("{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

impl Filter {
    /// ` AND ...` conditions and their arguments.
    fn sql(&self, args: &mut Vec<Value>) -> String {
        let mut sql = String::from(if self.matches_nothing { " AND 0" } else { "" });
        let mut eq = |col: &str, v: &Option<String>, args: &mut Vec<Value>| {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                args.push(v.clone().into());
            }
        };
        eq("tool", &self.tool, args);
        eq("triage_status", &self.status, args);
        eq("rule", &self.rule, args);
        if let Some(s) = self.severity {
            sql.push_str(" AND severity = ?");
            args.push((s as i64).into());
        }
        if let Some(c) = &self.cwe {
            sql.push_str(" AND instr(cwe, ?) > 0");
            args.push(format!(",{c},").into());
        }
        if let Some(p) = &self.path {
            sql.push_str(" AND file LIKE ? ESCAPE '\\'");
            args.push(like_prefix(p).into());
        }
        if let Some(c) = self.change {
            sql.push_str(&format!(" AND {}", c.sql()));
        }
        if let Some(q) = &self.text {
            // fold() is Unicode lower-casing, registered on every connection (db/mod.rs).
            sql.push_str(" AND (instr(fold(message), ?) > 0 OR instr(fold(file), ?) > 0 OR instr(fold(rule), ?) > 0)");
            for _ in 0..3 {
                args.push(q.to_lowercase().into());
            }
        }
        sql
    }
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

    /// The key columns, `id` last so that the order is total (keyset paging needs it).
    fn columns(self) -> &'static [&'static str] {
        match self {
            Sort::Severity => &["severity", "tool", "file", "line", "id"],
            Sort::Tool => &["tool", "severity", "id"],
            Sort::Rule => &["rule", "severity", "id"],
            Sort::File => &["file", "line", "id"],
            Sort::Status => &["triage_status", "severity", "id"],
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

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Page N (1-based), by OFFSET; clamped to the last page.
    Page(i64),
    /// The rows after this key (a cursor from [`Page::next`]).
    After(String),
    /// The rows before this key (a cursor from [`Page::prev`]), i.e. the previous page.
    Before(String),
}

/// One page of the table.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<Row>,
    /// Rows matching the filter.
    pub total: i64,
    /// 1-based number of this page, and how many there are (at least 1).
    pub number: i64,
    pub pages: i64,
    /// Cursors for the neighbouring pages, None at either end.
    pub next: Option<String>,
    pub prev: Option<String>,
}

fn sort_key_of(r: &rusqlite::Row, n: usize) -> rusqlite::Result<Vec<serde_json::Value>> {
    let first = ROW_COLUMNS.split(", ").count();
    (0..n)
        .map(|i| {
            Ok(match r.get::<_, Value>(first + i)? {
                Value::Integer(v) => serde_json::Value::from(v),
                Value::Text(t) => serde_json::Value::from(t),
                _ => serde_json::Value::Null,
            })
        })
        .collect()
}

fn encode_cursor(key: &[serde_json::Value]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// A cursor back into values, when it has the sort's shape; anything else is None.
fn decode_cursor(c: &str, n: usize) -> Option<Vec<Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let v: Vec<serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    (v.len() == n).then_some(())?;
    v.into_iter()
        .map(|x| match x {
            serde_json::Value::Number(n) => n.as_i64().map(Value::Integer),
            serde_json::Value::String(s) => Some(Value::Text(s)),
            _ => None,
        })
        .collect()
}

/// One page of findings of `project_id` matching `filter`.
pub fn page(
    conn: &Connection,
    project_id: i64,
    filter: &Filter,
    sort: Sort,
    dir: Direction,
    start: &Start,
    size: i64,
) -> Result<Page, DbError> {
    let size = size.max(1);
    let cols = sort.columns();
    let mut args: Vec<Value> = vec![project_id.into()];
    let cond = format!(" FROM findings WHERE project_id = ?{}", filter.sql(&mut args));
    let total: i64 = conn.query_row(&format!("SELECT count(*){cond}"), params_from_iter(args.iter()), |r| r.get(0))?;
    let pages = ((total + size - 1) / size).max(1);
    let tuple = format!("({})", cols.join(", "));
    let marks = format!("({})", vec!["?"; cols.len()].join(", "));
    let ordered = |d: Direction| cols.iter().map(|c| format!("{c} {}", d.sql())).collect::<Vec<_>>().join(", ");
    let cursor = match start {
        Start::After(c) | Start::Before(c) => decode_cursor(c, cols.len()),
        Start::Page(_) => None,
    };
    // (extra condition, its arguments, order, offset, whether rows come back reversed)
    let (extra, key_args, order, offset, reversed) = match (start, cursor) {
        (Start::After(_), Some(k)) => {
            let op = if dir == Direction::Asc { ">" } else { "<" };
            (format!(" AND {tuple} {op} {marks}"), k, ordered(dir), 0, false)
        }
        (Start::Before(_), Some(k)) => {
            let op = if dir == Direction::Asc { "<" } else { ">" };
            (format!(" AND {tuple} {op} {marks}"), k, ordered(dir.reversed()), 0, true)
        }
        (Start::Page(n), _) => (String::new(), Vec::new(), ordered(dir), ((*n).clamp(1, pages) - 1) * size, false),
        // A cursor of another shape (an edited URL): the first page.
        (_, None) => (String::new(), Vec::new(), ordered(dir), 0, false),
    };
    let mut all = args.clone();
    all.extend(key_args.iter().cloned());
    let sql =
        format!("SELECT {ROW_COLUMNS}, {}{cond}{extra} ORDER BY {order} LIMIT {size} OFFSET {offset}", cols.join(", "));
    let mut stmt = conn.prepare(&sql)?;
    let mut fetched: Vec<(Row, Vec<serde_json::Value>)> = stmt
        .query_map(params_from_iter(all), |r| Ok((row(r)?, sort_key_of(r, cols.len())?)))?
        .collect::<Result<_, _>>()?;
    if reversed {
        fetched.reverse();
    }
    // The page number: rows before the first row shown, over the page size.
    let number = match fetched.first() {
        None => match start {
            Start::Page(n) => (*n).clamp(1, pages),
            _ => 1,
        },
        Some((_, key)) => {
            let mut a = args;
            a.extend(decode_cursor(&encode_cursor(key), cols.len()).unwrap_or_default());
            let op = if dir == Direction::Asc { "<" } else { ">" };
            let before: i64 =
                conn.query_row(&format!("SELECT count(*){cond} AND {tuple} {op} {marks}"), params_from_iter(a), |r| {
                    r.get(0)
                })?;
            before / size + 1
        }
    };
    let prev = (number > 1).then(|| fetched.first().map(|f| encode_cursor(&f.1))).flatten();
    let next = (number < pages).then(|| fetched.last().map(|f| encode_cursor(&f.1))).flatten();
    Ok(Page { rows: fetched.into_iter().map(|f| f.0).collect(), total, number, pages, next, prev })
}

/// Counts per value of one column among the findings matching `filter` (most first).
pub fn facet(
    conn: &Connection,
    project_id: i64,
    filter: &Filter,
    column: &str,
    limit: usize,
) -> Result<Vec<(String, i64)>, DbError> {
    let mut args: Vec<Value> = vec![project_id.into()];
    let cond = filter.sql(&mut args);
    let sql = format!(
        "SELECT CAST({column} AS TEXT), count(*) FROM findings WHERE project_id = ?{cond}
         GROUP BY {column} ORDER BY count(*) DESC, {column} LIMIT {limit}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts of new / present / gone among the findings matching `filter` (one scan).
pub fn change_counts(conn: &Connection, project_id: i64, filter: &Filter) -> Result<Vec<(Change, i64)>, DbError> {
    let mut args: Vec<Value> = vec![project_id.into()];
    let cond = filter.sql(&mut args);
    let sums = Change::ALL.iter().map(|c| format!("coalesce(sum({}), 0)", c.sql())).collect::<Vec<_>>().join(", ");
    let n: [i64; 3] = conn.query_row(
        &format!("SELECT {sums} FROM findings WHERE project_id = ?{cond}"),
        params_from_iter(args),
        |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
    )?;
    Ok(Change::ALL.into_iter().zip(n).collect())
}

/// A finding as exports write it: the row plus its triage and how it changed.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub row: Row,
    pub comment: String,
    pub triage_user: Option<String>,
    pub triage_time: Option<i64>,
    pub change: Change,
}

/// Every finding matching `filter`, in `sort` order, one at a time (exports); `f` may
/// stop the walk early by returning false (the client went away).
pub fn each(
    conn: &Connection,
    project_id: i64,
    filter: &Filter,
    sort: Sort,
    dir: Direction,
    mut f: impl FnMut(ExportRow) -> bool,
) -> Result<(), DbError> {
    let mut args: Vec<Value> = vec![project_id.into()];
    let cond = filter.sql(&mut args);
    let order = sort.columns().iter().map(|c| format!("{c} {}", dir.sql())).collect::<Vec<_>>().join(", ");
    let n = ROW_COLUMNS.split(", ").count();
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS}, triage_comment, triage_user, triage_time, first_import = last_import
         FROM findings WHERE project_id = ?{cond} ORDER BY {order}"
    ))?;
    let mut rows = stmt.query(params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        let row = row(r)?;
        let change = match (row.present, r.get::<_, bool>(n + 3)?) {
            (false, _) => Change::Gone,
            (true, true) => Change::New,
            (true, false) => Change::Present,
        };
        let e = ExportRow { row, comment: r.get(n)?, triage_user: r.get(n + 1)?, triage_time: r.get(n + 2)?, change };
        if !f(e) {
            break;
        }
    }
    Ok(())
}

/// The ids of every finding matching `filter` (bulk triage).
pub fn ids(conn: &Connection, project_id: i64, filter: &Filter) -> Result<Vec<i64>, DbError> {
    let mut args: Vec<Value> = vec![project_id.into()];
    let cond = filter.sql(&mut args);
    let mut stmt = conn.prepare(&format!("SELECT id FROM findings WHERE project_id = ?{cond} ORDER BY id"))?;
    let rows = stmt.query_map(params_from_iter(args), |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
