//! What every reader of the `instances` table shares, the instances module and the live
//! map alike: which rows are live, and how a row's pair and state are decoded.

use rusqlite::Row;
use vrun_proto::{Pair, ViewerState};

/// The condition under which an instance is live: it holds its pair's lock.
pub const LIVE: &str = "state NOT IN ('stopped', 'failed')";

/// The pair and state of a row whose columns begin `generation, project, viewer, state`
/// (the instances module's full rows and the live map's narrower ones).
pub fn pair_and_state(r: &Row<'_>) -> rusqlite::Result<(Pair, ViewerState)> {
    let bad = |e: String| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into());
    let pair = Pair::new(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?).map_err(|e| bad(e.to_string()))?;
    let state = r.get::<_, String>(3)?.parse().map_err(|e: vrun_proto::state::UnknownState| bad(e.to_string()))?;
    Ok((pair, state))
}
