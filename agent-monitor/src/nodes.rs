//! What the hypervisor nodes' DomainMonitors last reported (`nodeInventory`), kept in
//! memory: each node reports every few seconds, so after a restart the picture is whole
//! again within one interval, and a node that stopped reporting is soon "unknown" rather
//! than believed.
//!
//! With a batch-system launcher agent-monitor has no libvirt of its own to ask (the domains
//! live on the nodes), so the status's "does its domain exist" comes from here; on one host
//! it still comes from agent-monitor's own libvirt inventory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vrun_proto::node::NodeDomain;

/// How long a node's report is believed. DomainMonitors report every 10 s by default; three
/// missed reports make the node's domains unknown.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

struct Report {
    at: Instant,
    domains: Vec<NodeDomain>,
}

#[derive(Default)]
pub struct NodeReports {
    by_node: Mutex<HashMap<String, Report>>,
}

impl NodeReports {
    /// Replaces `node`'s report.
    pub fn record(&self, node: &str, domains: Vec<NodeDomain>) {
        let mut map = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(node.to_string(), Report { at: Instant::now(), domains });
    }

    /// Whether `node`'s fresh report lists this agent-monitor's (`me`) domain of
    /// `generation`; `None` when the node has no fresh report.
    pub fn domain_exists(&self, node: &str, generation: i64, me: &str) -> Option<bool> {
        let map = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let r = map.get(node).filter(|r| r.at.elapsed() < FRESH_FOR)?;
        Some(r.domains.iter().any(|d| d.generation == generation && d.owner == me))
    }

    /// Whether `node`'s last report, however old, listed `me`'s domain of `generation`: a node
    /// may hand over only what it reported (a salvage outlasts a report's freshness).
    pub fn listed(&self, node: &str, generation: i64, me: &str) -> bool {
        let map = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        map.get(node).is_some_and(|r| r.domains.iter().any(|d| d.generation == generation && d.owner == me))
    }

    /// Nodes with a fresh report and how many of `me`'s domains each runs.
    pub fn summary(&self, me: &str) -> Vec<(String, usize)> {
        let map = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, usize)> = map
            .iter()
            .filter(|(_, r)| r.at.elapsed() < FRESH_FOR)
            .map(|(n, r)| (n.clone(), r.domains.iter().filter(|d| d.owner == me).count()))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_answers_for_its_own_node_and_owner_only() {
        let r = NodeReports::default();
        let p = vrun_proto::Pair::new("p", "v").unwrap();
        let d = NodeDomain {
            name: p.domain_name("00aa11bb22cc", 5),
            pair: p,
            generation: 5,
            running: true,
            owner: "00aa11bb22cc".into(),
        };
        r.record("n1", vec![d]);
        assert_eq!(r.domain_exists("n1", 5, "00aa11bb22cc"), Some(true));
        assert_eq!(r.domain_exists("n1", 6, "00aa11bb22cc"), Some(false));
        assert_eq!(r.domain_exists("n1", 5, "ffffffffffff"), Some(false), "another agent-monitor's generation 5");
        assert_eq!(r.domain_exists("n2", 5, "00aa11bb22cc"), None, "n2 never reported");
        assert!(r.listed("n1", 5, "00aa11bb22cc") && !r.listed("n2", 5, "00aa11bb22cc"));
        assert_eq!(r.summary("00aa11bb22cc"), vec![("n1".to_string(), 1)]);
    }
}
