//! Projects (one per SWAMP package) and import jobs.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde::Serialize;

use super::{now, DbError};

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
}

/// A project with its finding count, for the projects page.
#[derive(Debug, Clone)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub findings: i64,
}

pub fn list(conn: &Connection) -> Result<Vec<Project>, DbError> {
    let mut stmt = conn.prepare("SELECT id, name FROM projects ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok(Project { id: r.get(0)?, name: r.get(1)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn summaries(conn: &Connection) -> Result<Vec<ProjectSummary>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT p.id, p.name, (SELECT count(*) FROM findings f WHERE f.project_id = p.id)
         FROM projects p ORDER BY p.name",
    )?;
    let rows = stmt.query_map([], |r| Ok(ProjectSummary { id: r.get(0)?, name: r.get(1)?, findings: r.get(2)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Project>, DbError> {
    Ok(conn
        .query_row("SELECT id, name FROM projects WHERE id = ?1", [id], |r| {
            Ok(Project { id: r.get(0)?, name: r.get(1)? })
        })
        .optional()?)
}

/// Creates a project; `Ok(None)` when the name is taken.
pub fn create(conn: &Connection, name: &str) -> Result<Option<i64>, DbError> {
    match conn.execute("INSERT INTO projects (name, created) VALUES (?1, ?2)", params![name, now()]) {
        Ok(_) => Ok(Some(conn.last_insert_rowid())),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a project and (by cascade) its findings; false when it did not exist.
pub fn delete(conn: &Connection, id: i64) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM projects WHERE id = ?1", [id])? > 0)
}

/// Deletes a project that no import ever completed into (no imports, no findings) and
/// that no queued job will import into (imports run one at a time, so the caller's job is
/// the only one running); true when it did.
pub fn delete_if_never_imported(conn: &Connection, id: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "DELETE FROM projects WHERE id = ?1
         AND NOT EXISTS (SELECT 1 FROM imports WHERE project_id = ?1)
         AND NOT EXISTS (SELECT 1 FROM findings WHERE project_id = ?1)
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE project_id = ?1 AND status = 'queued')",
        [id],
    )? > 0)
}

/// State of an import job as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    #[serde(rename = "jobId")]
    pub id: String,
    pub status: String,
    pub message: String,
}

pub fn create_job(conn: &Connection, id: &str, project_id: i64) -> Result<(), DbError> {
    let t = now();
    conn.execute(
        "INSERT INTO jobs (id, project_id, status, created, updated) VALUES (?1, ?2, 'queued', ?3, ?3)",
        params![id, project_id, t],
    )?;
    Ok(())
}

pub fn set_job(conn: &Connection, id: &str, status: &str, message: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE jobs SET status = ?2, message = ?3, updated = ?4 WHERE id = ?1",
        params![id, status, message, now()],
    )?;
    Ok(())
}

pub fn get_job(conn: &Connection, id: &str) -> Result<Option<Job>, DbError> {
    Ok(conn
        .query_row("SELECT id, status, message FROM jobs WHERE id = ?1", [id], |r| {
            Ok(Job { id: r.get(0)?, status: r.get(1)?, message: r.get(2)? })
        })
        .optional()?)
}

/// Jobs left `queued`/`running` by a previous process can never finish: their upload
/// files are gone. Mark them failed so pollers get an answer.
pub fn fail_orphaned_jobs(conn: &Connection) -> Result<usize, DbError> {
    Ok(conn.execute(
        "UPDATE jobs SET status = 'failed', message = 'the viewer restarted before this import ran', updated = ?1
         WHERE status IN ('queued', 'running')",
        [now()],
    )?)
}
