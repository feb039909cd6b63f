//! The database side of an import: fingerprints and upserts, one finding at a time.
//!
//! A finding's fingerprint is SHA-256 over (tool, rule, file, line, SHA-256(message)),
//! NUL-separated. When one results file reports the same five values more than once, the
//! second and later occurrences get the ordinal mixed in, so genuinely repeated findings
//! are all kept while importing the same file again maps every finding onto its old row.
//! Triage lives on that row, which is why it survives re-imports.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::{clip, Finding, ImportError, Sink};
use crate::config::Limits;

/// The stable identity of a finding; `ordinal` counts earlier identical findings in the
/// same results file.
pub fn fingerprint(tool: &str, rule: &str, file: &str, line: i64, message: &str, ordinal: u32) -> String {
    hex::encode(digest(tool, rule, file, line, message, ordinal))
}

fn digest(tool: &str, rule: &str, file: &str, line: i64, message: &str, ordinal: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [tool.as_bytes(), rule.as_bytes(), file.as_bytes(), line.to_string().as_bytes()] {
        h.update(part);
        h.update([0]);
    }
    h.update(Sha256::digest(message.as_bytes()));
    if ordinal > 0 {
        h.update([0]);
        h.update(ordinal.to_be_bytes());
    }
    h.finalize().into()
}

/// Writes findings of one import into an open transaction.
pub(super) struct DbSink<'c> {
    conn: &'c Connection,
    project_id: i64,
    import_id: i64,
    limits: &'c Limits,
    /// Occurrences per fingerprint-without-ordinal in the current file (raw digests:
    /// about 50 bytes per finding, 25 MB at the 500,000-finding limit).
    seen: HashMap<[u8; 32], u32>,
    /// Tools this import reported; their findings missing from it are marked absent.
    tools: BTreeSet<String>,
    count: u64,
    new: u64,
}

impl<'c> DbSink<'c> {
    pub(super) fn new(conn: &'c Connection, project_id: i64, import_id: i64, limits: &'c Limits) -> Self {
        DbSink { conn, project_id, import_id, limits, seen: HashMap::new(), tools: BTreeSet::new(), count: 0, new: 0 }
    }

    /// Ordinals restart with each results file.
    pub(super) fn next_file(&mut self) {
        self.seen.clear();
    }

    /// Marks findings of the imported tools that this import did not report as absent
    /// (they are kept, with their triage), and returns (findings, new findings).
    pub(super) fn finish(self) -> Result<(u64, u64), ImportError> {
        let mut stmt = self
            .conn
            .prepare("UPDATE findings SET present = 0 WHERE project_id = ?1 AND tool = ?2 AND last_import <> ?3")?;
        for tool in &self.tools {
            stmt.execute(params![self.project_id, tool, self.import_id])?;
        }
        Ok((self.count, self.new))
    }
}

impl Sink for DbSink<'_> {
    fn finding(&mut self, f: Finding) -> Result<(), ImportError> {
        self.count += 1;
        if self.count > self.limits.max_findings {
            return Err(ImportError::TooManyFindings(self.limits.max_findings));
        }
        let max = self.limits.max_field_bytes;
        let (tool, rule, file) = (clip(f.tool, 256), clip(f.rule, 1024), clip(f.file, 4096));
        let (category, message) = (clip(f.category, 1024), clip(f.message, max));

        let base = digest(&tool, &rule, &file, f.line, &message, 0);
        let ordinal = {
            let n = self.seen.entry(base).or_insert(0);
            *n += 1;
            *n - 1
        };
        let fp =
            if ordinal == 0 { hex::encode(base) } else { fingerprint(&tool, &rule, &file, f.line, &message, ordinal) };

        let mut upsert = self.conn.prepare_cached(
            "INSERT INTO findings (project_id, fingerprint, tool, rule, category, severity, file, line, message,
                                   first_import, last_import)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
             ON CONFLICT (project_id, fingerprint) DO UPDATE SET
                 severity = excluded.severity, category = excluded.category,
                 present = 1, last_import = excluded.last_import
             RETURNING id, first_import",
        )?;
        let (id, first_import): (i64, i64) = upsert.query_row(
            params![
                self.project_id,
                fp,
                tool,
                rule,
                category,
                f.severity as i64,
                file,
                f.line,
                message,
                self.import_id
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if first_import == self.import_id {
            self.new += 1;
        }
        // Locations are replaced wholesale: they carry no user state.
        self.conn.prepare_cached("DELETE FROM locations WHERE finding_id = ?1")?.execute([id])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO locations (finding_id, ord, file, line, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (ord, loc) in f.locations.into_iter().take(self.limits.max_locations).enumerate() {
            insert.execute(params![id, ord as i64, clip(loc.file, 4096), loc.line, clip(loc.message, max)])?;
        }
        if !self.tools.contains(&tool) {
            self.tools.insert(tool);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_each_part() {
        let a = fingerprint("t", "r", "f", 1, "m", 0);
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint("t", "r", "f", 1, "m", 0));
        for other in [
            fingerprint("T", "r", "f", 1, "m", 0),
            fingerprint("t", "R", "f", 1, "m", 0),
            fingerprint("t", "r", "F", 1, "m", 0),
            fingerprint("t", "r", "f", 2, "m", 0),
            fingerprint("t", "r", "f", 1, "M", 0),
            fingerprint("t", "r", "f", 1, "m", 1),
            // Separators matter: "ab"+"c" is not "a"+"bc".
            fingerprint("tr", "", "f", 1, "m", 0),
        ] {
            assert_ne!(a, other);
        }
    }
}
