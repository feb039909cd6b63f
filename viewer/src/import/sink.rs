//! The database side of an import: stage every finding, then match them onto the
//! project's existing findings and write.
//!
//! Identity (what carries triage across imports) is the *match key*: the tool's own
//! fingerprints when it gives them, else tool + rule + file + line-independent context +
//! message (see [`crate::db::identity`]). The line is never part of it, nor the position
//! in the file. Within one match key, old and new findings are paired by line offset:
//! the offset that pairs the most of them first (a block of lines inserted above moves
//! them all by the same amount), ties to the smallest shift, then again for what is left.
//! Results identical in every field (same key and line) therefore pair in file order, and
//! results that differ in anything the file says never take each other's triage.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{clip, Finding, ImportError, Sink};
use crate::config::Limits;
use crate::db::findings::Location;
use crate::db::identity::match_key;

/// Groups bigger than this (old × new) are paired in line order without the offset search,
/// which is quadratic per round.
const MAX_PAIRING_WORK: usize = 250_000;

/// Writes findings of one import into an open transaction.
pub(super) struct DbSink<'c> {
    conn: &'c Connection,
    project_id: i64,
    import_id: i64,
    limits: &'c Limits,
    count: u64,
}

impl<'c> DbSink<'c> {
    pub(super) fn new(
        conn: &'c Connection,
        project_id: i64,
        import_id: i64,
        limits: &'c Limits,
    ) -> Result<Self, ImportError> {
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS staged (
                 seq INTEGER PRIMARY KEY, match_key TEXT NOT NULL, tool TEXT NOT NULL, rule TEXT NOT NULL,
                 category TEXT NOT NULL, severity INTEGER NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
                 message TEXT NOT NULL, markdown TEXT NOT NULL, cwe TEXT NOT NULL, locations TEXT NOT NULL, flows TEXT NOT NULL,
                 old_id INTEGER);
             CREATE INDEX IF NOT EXISTS temp.staged_by_key ON staged (match_key, line, seq);
             DELETE FROM staged;",
        )?;
        Ok(DbSink { conn, project_id, import_id, limits, count: 0 })
    }

    /// Matches the staged findings onto existing ones, writes them, marks findings of the
    /// imported tools that this import did not report as absent (kept, with their triage),
    /// and returns (findings, new findings).
    pub(super) fn finish(self) -> Result<(u64, u64), ImportError> {
        // First pair every group, then write in file order (so new rows' ids follow it).
        // pair_group updates staged.old_id while this scan is open; the scan walks
        // staged_by_key, which does not hold old_id, so it is not disturbed.
        {
            let mut keys = self.conn.prepare("SELECT DISTINCT match_key FROM staged")?;
            let mut key_rows = keys.query([])?;
            while let Some(row) = key_rows.next()? {
                let key: String = row.get(0)?;
                self.pair_group(&key)?;
            }
        }
        let mut new = 0;
        {
            let mut all = self.conn.prepare("SELECT seq, match_key, old_id FROM staged ORDER BY seq")?;
            let mut rows = all.query([])?;
            while let Some(row) = rows.next()? {
                if self.write(row.get(0)?, &row.get::<_, String>(1)?, row.get(2)?)? {
                    new += 1;
                }
            }
        }
        let mut stmt = self.conn.prepare(
            "UPDATE findings SET present = 0 WHERE project_id = ?1 AND last_import <> ?2
             AND tool IN (SELECT DISTINCT tool FROM temp.staged)",
        )?;
        stmt.execute(params![self.project_id, self.import_id])?;
        self.conn.execute("DELETE FROM staged", [])?;
        Ok((self.count, new))
    }

    /// Pairs the staged findings of one match key with existing ones (`staged.old_id`).
    fn pair_group(&self, key: &str) -> Result<(), ImportError> {
        let lines = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<(i64, i64)>, ImportError> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let old = lines(
            "SELECT id, line FROM findings WHERE project_id = ?1 AND match_key = ?2 ORDER BY line, id",
            params![self.project_id, key],
        )?;
        let staged = lines("SELECT seq, line FROM staged WHERE match_key = ?1 ORDER BY line, seq", params![key])?;
        let pairs = pair_by_offset(
            &old.iter().map(|x| x.1).collect::<Vec<_>>(),
            &staged.iter().map(|x| x.1).collect::<Vec<_>>(),
        );
        let mut set = self.conn.prepare_cached("UPDATE staged SET old_id = ?2 WHERE seq = ?1")?;
        for (i, (seq, _)) in staged.iter().enumerate() {
            if let Some(o) = pairs[i] {
                set.execute(params![seq, old[o].0])?;
            }
        }
        Ok(())
    }

    /// Writes staged finding `seq` onto `old_id`, or as a new row; true when new.
    fn write(&self, seq: i64, key: &str, old_id: Option<i64>) -> Result<bool, ImportError> {
        let staged = self
            .conn
            .prepare_cached(
                "SELECT tool, rule, category, severity, file, line, message, cwe, locations, flows, markdown
                 FROM staged WHERE seq = ?1",
            )?
            .query_row([seq], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                ))
            })?;
        let (tool, rule, category, severity, file, line, message, cwe, locations, flows, markdown) = staged;
        let (id, is_new) = match old_id {
            Some(id) => {
                self.conn
                    .prepare_cached(
                        "UPDATE findings SET tool = ?2, rule = ?3, category = ?4, severity = ?5, file = ?6, line = ?7,
                         message = ?8, cwe = ?9, present = 1, last_import = ?10, markdown = ?11 WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        tool,
                        rule,
                        category,
                        severity,
                        file,
                        line,
                        message,
                        cwe,
                        self.import_id,
                        markdown
                    ])?;
                (id, false)
            }
            None => {
                let id = self.insert(key, &tool, &rule, &category, severity, &file, line, &message, &cwe)?;
                self.conn
                    .prepare_cached("UPDATE findings SET markdown = ?2 WHERE id = ?1")?
                    .execute(params![id, markdown])?;
                (id, true)
            }
        };
        // Locations are replaced wholesale: they carry no user state.
        self.conn.prepare_cached("DELETE FROM locations WHERE finding_id = ?1")?.execute([id])?;
        let locations: Vec<Location> = serde_json::from_str(&locations).map_err(std::io::Error::other)?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO locations (finding_id, ord, file, line, message, snippet) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (ord, l) in locations.into_iter().enumerate() {
            insert.execute(params![id, ord as i64, l.file, l.line, l.message, l.snippet])?;
        }
        self.conn.prepare_cached("DELETE FROM flow_steps WHERE finding_id = ?1")?.execute([id])?;
        let flows: Vec<Vec<Location>> = serde_json::from_str(&flows).map_err(std::io::Error::other)?;
        let mut step = self.conn.prepare_cached(
            "INSERT INTO flow_steps (finding_id, flow, step, file, line, message, snippet)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (n, flow) in flows.into_iter().enumerate() {
            for (k, l) in flow.into_iter().enumerate() {
                step.execute(params![id, n as i64 + 1, k as i64 + 1, l.file, l.line, l.message, l.snippet])?;
            }
        }
        Ok(is_new)
    }

    /// A new row. Its fingerprint (a per-row identifier) derives from the match key and
    /// line, with a counter when a row of this project already has it.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        key: &str,
        tool: &str,
        rule: &str,
        category: &str,
        severity: i64,
        file: &str,
        line: i64,
        message: &str,
        cwe: &str,
    ) -> Result<i64, ImportError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO findings (project_id, fingerprint, match_key, tool, rule, category, severity, file, line,
                                   message, cwe, first_import, last_import)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
             ON CONFLICT (project_id, fingerprint) DO NOTHING RETURNING id",
        )?;
        for n in 0u32.. {
            let mut h = Sha256::new();
            h.update(key.as_bytes());
            h.update(line.to_be_bytes());
            h.update(n.to_be_bytes());
            let fp = hex::encode(h.finalize());
            let id: Option<i64> = stmt
                .query_row(
                    params![
                        self.project_id,
                        fp,
                        key,
                        tool,
                        rule,
                        category,
                        severity,
                        file,
                        line,
                        message,
                        cwe,
                        self.import_id
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                return Ok(id);
            }
        }
        unreachable!("a u32 counter finds a free fingerprint")
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
        let context = clip(f.context, max);
        let key = match_key(&tool, f.identity.as_deref(), &rule, &file, &context, &message);
        let cwe = if f.cwe.is_empty() { String::new() } else { format!(",{},", f.cwe.join(",")) };
        let locations: Vec<Location> = f
            .locations
            .into_iter()
            .take(self.limits.max_locations)
            .map(|l| Location {
                file: clip(l.file, 4096),
                line: l.line,
                message: clip(l.message, max),
                snippet: clip(l.snippet, max),
            })
            .collect();
        let locations = serde_json::to_string(&locations).map_err(std::io::Error::other)?;
        // Flow steps share the per-finding location budget.
        let mut budget = self.limits.max_locations;
        let flows: Vec<Vec<Location>> = f
            .flows
            .into_iter()
            .map(|steps| {
                let take = steps.len().min(budget);
                budget -= take;
                steps
                    .into_iter()
                    .take(take)
                    .map(|l| Location {
                        file: clip(l.file, 4096),
                        line: l.line,
                        message: clip(l.message, max),
                        snippet: clip(l.snippet, max),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        let flows = serde_json::to_string(&flows).map_err(std::io::Error::other)?;
        self.conn
            .prepare_cached(
                "INSERT INTO staged (match_key, tool, rule, category, severity, file, line, message, markdown, cwe,
                                     locations, flows)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                key,
                tool,
                rule,
                category,
                f.severity as i64,
                file,
                f.line,
                message,
                clip(f.markdown, max),
                cwe,
                locations,
                flows
            ])?;
        Ok(())
    }
}

/// Pairs old lines with new lines of one match key (both sorted); returns, for each new
/// line, the index of its old partner.
pub fn pair_by_offset(old: &[i64], new: &[i64]) -> Vec<Option<usize>> {
    let mut partner: Vec<Option<usize>> = vec![None; new.len()];
    if old.is_empty() || new.is_empty() {
        return partner;
    }
    let mut old_free: Vec<bool> = vec![true; old.len()];
    if old.len().saturating_mul(new.len()) > MAX_PAIRING_WORK {
        for (i, p) in partner.iter_mut().enumerate().take(old.len()) {
            *p = Some(i);
        }
        return partner;
    }
    loop {
        let mut counts: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for (o, _) in old.iter().zip(&old_free).filter(|(_, f)| **f) {
            for (n, _) in new.iter().zip(&partner).filter(|(_, p)| p.is_none()) {
                *counts.entry(n - o).or_insert(0) += 1;
            }
        }
        let Some((&d, _)) =
            counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.abs().cmp(&a.0.abs())).then(b.0.cmp(a.0)))
        else {
            return partner;
        };
        // Greedy in order: each free old line takes the first free new line at its offset.
        let mut paired = false;
        for oi in 0..old.len() {
            if !old_free[oi] {
                continue;
            }
            if let Some(ni) = (0..new.len()).find(|&ni| partner[ni].is_none() && new[ni] == old[oi] + d) {
                partner[ni] = Some(oi);
                old_free[oi] = false;
                paired = true;
            }
        }
        if !paired {
            return partner;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_follows_the_common_shift() {
        // Lines inserted above: everything moves by 5.
        assert_eq!(pair_by_offset(&[10, 20, 30], &[15, 25, 35]), vec![Some(0), Some(1), Some(2)]);
        // One result removed, nothing moved: the others keep their partners.
        assert_eq!(pair_by_offset(&[10, 20, 30], &[10, 30]), vec![Some(0), Some(2)]);
        // Removed and shifted: the shift that pairs the most wins.
        assert_eq!(pair_by_offset(&[10, 20, 30], &[25, 35]), vec![Some(1), Some(2)]);
        // Identical results pair in order; an extra one is new.
        assert_eq!(pair_by_offset(&[7, 7], &[7, 7, 7]), vec![Some(0), Some(1), None]);
        // Two blocks shifted differently.
        assert_eq!(pair_by_offset(&[10, 11, 50, 51], &[10, 11, 60, 61]), vec![Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(pair_by_offset(&[], &[1]), vec![None]);
    }
}
