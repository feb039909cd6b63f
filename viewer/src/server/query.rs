//! The findings listing's query, shared by the API and the findings page.

use serde::Deserialize;

use crate::db::findings::{Direction, Filter, Severity, Sort};

/// Query of the findings listing (API and page share the meaning of each field).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub severity: Option<String>,
    pub tool: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
}

impl ListQuery {
    /// Empty values mean "any"; unknown severities are ignored rather than refused.
    pub fn filter(&self) -> Filter {
        let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        Filter {
            severity: nonempty(&self.severity).and_then(|s| Severity::from_name(&s)),
            tool: nonempty(&self.tool),
            status: nonempty(&self.status),
            text: nonempty(&self.q),
        }
    }
    pub fn sort(&self) -> (Sort, Direction) {
        let dir = if self.dir.as_deref() == Some("desc") { Direction::Desc } else { Direction::Asc };
        (Sort::parse(self.sort.as_deref().unwrap_or("")), dir)
    }
    /// 1-based page number.
    pub fn page(&self) -> i64 {
        self.page.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1)
    }
}
