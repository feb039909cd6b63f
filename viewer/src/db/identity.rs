//! The match key: what makes two findings of different imports the same finding.
//!
//! Tool fingerprints (SARIF `fingerprints` / `partialFingerprints`) when the tool gives
//! them; else tool, rule, file, a line-independent context (the primary location's
//! snippet) and the message. Never the line and never the position in the file: lines
//! move when code is added above, and results are reordered between runs.

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::DbError;

/// Hex SHA-256 over the NUL-separated parts (so "ab"+"c" differs from "a"+"bc").
pub fn match_key(tool: &str, identity: Option<&str>, rule: &str, file: &str, context: &str, message: &str) -> String {
    let mut h = Sha256::new();
    let parts: &[&str] = match identity {
        Some(id) => &["tool-fingerprints", tool, id],
        None => &["content", tool, rule, file, context, message],
    };
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Gives rows from schema version 1 (which had no match key) theirs, from their content;
/// returns how many it filled. Runs on open, after migrating.
pub fn fill_missing(conn: &mut Connection) -> Result<usize, DbError> {
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, String, String, String)> = {
        let mut stmt = tx.prepare("SELECT id, tool, rule, file, message FROM findings WHERE match_key = ''")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    {
        let mut update = tx.prepare("UPDATE findings SET match_key = ?2 WHERE id = ?1")?;
        for (id, tool, rule, file, message) in &rows {
            update.execute(params![id, match_key(tool, None, rule, file, "", message)])?;
        }
    }
    tx.commit()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_each_part_but_not_on_fingerprint_free_fields() {
        let a = match_key("t", None, "r", "f", "c", "m");
        assert_eq!(a.len(), 64);
        for other in [
            match_key("T", None, "r", "f", "c", "m"),
            match_key("t", None, "R", "f", "c", "m"),
            match_key("t", None, "r", "F", "c", "m"),
            match_key("t", None, "r", "f", "C", "m"),
            match_key("t", None, "r", "f", "c", "M"),
            match_key("tr", None, "", "f", "c", "m"),
            match_key("t", Some("x"), "r", "f", "c", "m"),
        ] {
            assert_ne!(a, other);
        }
        // With tool fingerprints, the rest does not matter.
        assert_eq!(match_key("t", Some("x"), "r", "f", "c", "m"), match_key("t", Some("x"), "R2", "g", "", "n"));
    }
}
