//! The source archive (`file2`): the files findings refer to, kept in the database so
//! the pages can show the lines around each location.
//!
//! What is kept is bounded, because it travels in the saved viewer database: only files
//! that some location of the project names, each at most [`MAX_FILE_BYTES`], together at
//! most [`MAX_TOTAL_BYTES`] (files past that are left out, smallest-path-first order being
//! the archive's). A finding's path and an archive entry match when one ends with the
//! other on a `/` boundary (tools report absolute build paths, archives hold
//! `pkg-1.0/src/a.c`); the longest match wins. Each import with an archive replaces the
//! project's sources.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection};

use super::{zip, ImportError};

/// Largest single source file kept (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Largest total of source kept per project (32 MiB).
pub const MAX_TOTAL_BYTES: u64 = 32 << 20;
/// Entries read from an archive's directory at most.
const MAX_ENTRIES: usize = 200_000;

fn components(p: &str) -> Vec<&str> {
    p.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").collect()
}

/// How many trailing components a finding's path and an archive entry share, when the
/// shorter is wholly a suffix of the longer, or the entry is all shared but its top-level
/// directory (`pkg-1.0/`, where the build had another name); else 0.
fn suffix_match(finding: &[&str], entry: &[&str]) -> usize {
    let n = finding.iter().rev().zip(entry.iter().rev()).take_while(|(x, y)| x == y).count();
    if n > 0 && (n == finding.len().min(entry.len()) || n + 1 == entry.len()) {
        n
    } else {
        0
    }
}

/// Replaces the project's sources with the files of the archive at `path` that its
/// findings name; returns how many were kept.
pub fn store(conn: &Connection, project_id: i64, name: &str, path: &Path) -> Result<usize, ImportError> {
    let bad =
        |reason: String| ImportError::Malformed { file: name.to_owned(), reason: format!("source archive: {reason}") };
    let mut f = std::fs::File::open(path)?;
    let entries = zip::entries(&mut f, MAX_ENTRIES).map_err(bad)?;
    let files: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT l.file FROM locations l JOIN findings f ON f.id = l.finding_id
             WHERE f.project_id = ?1 AND l.file <> ''
             UNION SELECT DISTINCT s.file FROM flow_steps s JOIN findings f ON f.id = s.finding_id
             WHERE f.project_id = ?1 AND s.file <> ''",
        )?;
        let rows = stmt.query_map([project_id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let entry_parts: Vec<Vec<&str>> = entries.iter().map(|e| components(&e.name)).collect();
    for (i, parts) in entry_parts.iter().enumerate() {
        if let Some(last) = parts.last() {
            by_name.entry(last).or_default().push(i);
        }
    }
    conn.execute("DELETE FROM sources WHERE project_id = ?1", [project_id])?;
    let mut insert = conn.prepare("INSERT INTO sources (project_id, file, entry, content) VALUES (?1, ?2, ?3, ?4)")?;
    let (mut total, mut kept) = (0u64, 0usize);
    for file in &files {
        let parts = components(file);
        let Some(last) = parts.last() else { continue };
        let best = by_name
            .get(last)
            .into_iter()
            .flatten()
            .map(|&i| (suffix_match(&parts, &entry_parts[i]), i))
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, i)| (*n, std::cmp::Reverse(*i)));
        let Some((_, i)) = best else { continue };
        let e = &entries[i];
        if e.size > MAX_FILE_BYTES || total + e.size > MAX_TOTAL_BYTES {
            continue;
        }
        let bytes = zip::read(&mut f, e, MAX_FILE_BYTES).map_err(bad)?;
        total += bytes.len() as u64;
        insert.execute(params![project_id, file, e.name, String::from_utf8_lossy(&bytes)])?;
        kept += 1;
    }
    Ok(kept)
}

/// The stored source of `file` in a project: (archive entry, content).
pub fn get(conn: &Connection, project_id: i64, file: &str) -> Result<Option<(String, String)>, crate::db::DbError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT entry, content FROM sources WHERE project_id = ?1 AND file = ?2",
            params![project_id, file],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_on_component_suffixes() {
        let m = |a: &str, b: &str| suffix_match(&components(a), &components(b));
        assert_eq!(m("/home/ci/build/pkg/src/a.c", "pkg-1.0/src/a.c"), 2, "the archive's top directory may differ");
        assert_eq!(m("/x/lib/src/a.c", "pkg-1.0/gen/src/a.c"), 0, "but nothing below it");
        assert_eq!(m("/home/ci/pkg-1.0/src/a.c", "pkg-1.0/src/a.c"), 3);
        assert_eq!(m("src/a.c", "pkg-1.0/src/a.c"), 2);
        assert_eq!(m("C:\\w\\src\\a.c", "./src/a.c"), 2);
        assert_eq!(m("lib/a.c", "pkg/src/a.c"), 0);
    }
}
