//! Numbered SQL migrations from `sql/agent-monitor/`, applied on open by `vrun-migrate`
//! (the viewer's database follows the same rules).

use rusqlite::Connection;
use vrun_migrate::{MigrateError, Schema};

/// In order; the n-th produces schema version n. Append only; never edit a released
/// migration.
const SCHEMA: Schema = Schema {
    migrations: &[
        include_str!("../../../sql/agent-monitor/0001_init.sql"),
        include_str!("../../../sql/agent-monitor/0002_pushes.sql"),
        include_str!("../../../sql/agent-monitor/0003_job_ids.sql"),
        include_str!("../../../sql/agent-monitor/0004_front_door.sql"),
        include_str!("../../../sql/agent-monitor/0005_waiting.sql"),
        include_str!("../../../sql/agent-monitor/0006_platforms.sql"),
    ],
    application_id: None,
};

pub fn apply(conn: &mut Connection) -> anyhow::Result<()> {
    let applied = SCHEMA.apply(conn).map_err(|e| match e {
        MigrateError::TooNew { found, known } => {
            anyhow::anyhow!("database schema version {found} is newer than this agent-monitor ({known})")
        }
        e => e.into(),
    })?;
    for version in applied {
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
