//! The findings listing's query, shared by the API, the findings page, bulk triage and
//! the exports.

use serde::Deserialize;

use crate::db::findings::Severity;
use crate::db::listing::{Change, Direction, Filter, Sort, Start};

/// Query of the findings listing (API and page share the meaning of each field).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    pub severity: Option<String>,
    pub tool: Option<String>,
    pub status: Option<String>,
    pub rule: Option<String>,
    pub cwe: Option<String>,
    pub path: Option<String>,
    pub change: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    pub page: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
    pub per_page: Option<String>,
}

/// The filter fields, as (query name, label); the page shows each active one.
pub const FILTER_FIELDS: [(&str, &str); 8] = [
    ("severity", "Severity"),
    ("tool", "Tool"),
    ("rule", "Rule"),
    ("status", "Status"),
    ("cwe", "CWE"),
    ("path", "Path starts with"),
    ("change", "Since the previous analysis"),
    ("q", "Text"),
];

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl ListQuery {
    /// A filter field's value as given (trimmed, empty = absent).
    pub fn field(&self, name: &str) -> Option<String> {
        nonempty(match name {
            "severity" => &self.severity,
            "tool" => &self.tool,
            "rule" => &self.rule,
            "status" => &self.status,
            "cwe" => &self.cwe,
            "path" => &self.path,
            "change" => &self.change,
            "q" => &self.q,
            _ => return None,
        })
    }

    /// Empty values mean "any". A severity or change word that means nothing matches
    /// nothing (and the page says which filter it was), rather than being ignored.
    pub fn filter(&self) -> Filter {
        let cwe = nonempty(&self.cwe).map(|c| {
            let n = c.trim_start_matches(['C', 'W', 'E', 'c', 'w', 'e', '-', ' ']).trim_start_matches('0');
            n.to_owned()
        });
        let status = nonempty(&self.status).map(|s| s.to_lowercase().replace(' ', "_"));
        let mut f = Filter {
            severity: nonempty(&self.severity).and_then(|s| Severity::from_name(&s)),
            tool: nonempty(&self.tool),
            status,
            rule: nonempty(&self.rule),
            cwe,
            path: nonempty(&self.path),
            change: nonempty(&self.change).and_then(|c| Change::from_name(&c)),
            text: nonempty(&self.q),
            matches_nothing: false,
        };
        f.matches_nothing = (nonempty(&self.severity).is_some() && f.severity.is_none())
            || (nonempty(&self.change).is_some() && f.change.is_none());
        f
    }

    pub fn sort(&self) -> (Sort, Direction) {
        let dir = if self.dir.as_deref() == Some("desc") { Direction::Desc } else { Direction::Asc };
        (Sort::parse(self.sort.as_deref().unwrap_or("")), dir)
    }

    /// 1-based page number; nonsense is page 1, huge numbers are clamped by the listing.
    pub fn page(&self) -> i64 {
        self.page.as_deref().and_then(|p| p.trim().parse::<i64>().ok()).filter(|p| *p >= 1).unwrap_or(1)
    }

    /// Where the page starts: a cursor when one is given, else the page number.
    pub fn start(&self) -> Start {
        match (nonempty(&self.after), nonempty(&self.before)) {
            (Some(a), _) => Start::After(a),
            (None, Some(b)) => Start::Before(b),
            _ => Start::Page(self.page()),
        }
    }
}
