//! What a hypervisor node's DomainMonitor (`vruntask domain-monitor`) tells agent-monitor,
//! with the node credential (role `node`):
//!
//! - `agentMonitor.nodeInventory(struct{node, domains})`: every vrun domain of the node, each
//!   `{name, project, viewer, generation, running, owner}`. The answer is
//!   `{monitor_id, live}`: agent-monitor's id (the DomainMonitor acts only on that owner's
//!   domains) and which of the reported generations agent-monitor still holds live.
//! - `agentMonitor.nodeSalvaged(struct{node, domain, project, viewer, generation, reason,
//!   viewerdb?, checksum?})`: the domain's job was gone, so the DomainMonitor powered it off
//!   and hands over what its guest saved. agent-monitor keeps the database (if the
//!   generation is still the pair's newest) and ends the instance if it is still live; the
//!   answer `{kept, note}` says whether the database was kept. Only after that answer does
//!   the DomainMonitor remove the domain.

use dxr::Value;

use crate::fault::{FaultCode, RpcError};
use crate::names::{is_monitor_id, is_node_name, Pair};
use crate::value::{StructBuilder, StructReader};

/// Most domains one report may list (a hypervisor runs far fewer viewers).
pub const MAX_REPORTED_DOMAINS: usize = 1024;
/// Longest reason a DomainMonitor may give.
const MAX_REASON: usize = 1024;

/// One vrun domain as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDomain {
    pub name: String,
    pub pair: Pair,
    pub generation: i64,
    pub running: bool,
    /// The owning agent-monitor's id ("" when the metadata names none).
    pub owner: String,
}

/// `agentMonitor.nodeInventory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInventory {
    pub node: String,
    pub domains: Vec<NodeDomain>,
}

fn read_node(r: &mut StructReader<'_>) -> Result<String, RpcError> {
    let node = r.req_str("node")?;
    if !is_node_name(&node) {
        return Err(RpcError::new(FaultCode::InvalidName, "node must be 1 to 64 characters from [A-Za-z0-9._-]"));
    }
    Ok(node)
}

/// A domain name as vrun makes them (`vrun-<id>-<project>-<viewer>-g<N>`): checked against
/// the pair and generation, so a report cannot name someone else's domain.
fn domain_name_ok(name: &str, pair: &Pair, generation: i64, owner: &str) -> bool {
    if owner.is_empty() {
        // Made before ids existed: only listed, never acted on.
        name.starts_with("vrun-") && name.len() <= 256
    } else {
        is_monitor_id(owner) && name == pair.domain_name(owner, generation)
    }
}

fn read_domain(v: &Value) -> Result<NodeDomain, RpcError> {
    let mut r = StructReader::single(std::slice::from_ref(v))?;
    let name = r.req_str("name")?;
    let pair = Pair::new(&r.req_str("project")?, &r.req_str("viewer")?)?;
    let generation = r.req_int("generation")?;
    let running = r.opt_bool("running")?.unwrap_or(false);
    let owner = r.opt_str("owner")?.unwrap_or_default();
    r.finish()?;
    if generation <= 0 || !domain_name_ok(&name, &pair, generation, &owner) {
        return Err(RpcError::invalid_params(format!(
            "domain {:?} is not a vrun domain of {pair} generation {generation}",
            name.chars().take(80).collect::<String>()
        )));
    }
    Ok(NodeDomain { name, pair, generation, running, owner })
}

impl NodeInventory {
    pub fn from_params(params: &[Value]) -> Result<NodeInventory, RpcError> {
        let mut r = StructReader::single(params)?;
        let node = read_node(&mut r)?;
        let items = r.opt_array("domains")?.unwrap_or_default();
        if items.len() > MAX_REPORTED_DOMAINS {
            return Err(RpcError::invalid_params(format!("at most {MAX_REPORTED_DOMAINS} domains per report")));
        }
        let domains = items.iter().map(read_domain).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(NodeInventory { node, domains })
    }

    pub fn to_params(&self) -> Vec<Value> {
        let domains = self
            .domains
            .iter()
            .map(|d| {
                StructBuilder::new()
                    .str("name", d.name.clone())
                    .str("project", d.pair.project())
                    .str("viewer", d.pair.viewer())
                    .int("generation", d.generation)
                    .bool("running", d.running)
                    .str("owner", d.owner.clone())
                    .build()
            })
            .collect();
        vec![StructBuilder::new().str("node", self.node.clone()).value("domains", Value::Array(domains)).build()]
    }
}

/// The answer to `nodeInventory`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryReply {
    pub monitor_id: String,
    /// The reported generations (of this agent-monitor's domains) whose instance is live.
    pub live: Vec<i64>,
}

impl InventoryReply {
    pub fn to_value(&self) -> Value {
        let live = self.live.iter().map(|g| Value::Integer(crate::value::clamp_i32(*g))).collect();
        StructBuilder::new().str("monitor_id", self.monitor_id.clone()).value("live", Value::Array(live)).build()
    }

    pub fn from_value(v: &Value) -> Result<InventoryReply, RpcError> {
        let Value::Struct(m) = v else {
            return Err(RpcError::invalid_params("nodeInventory's answer must be a struct"));
        };
        let monitor_id = m.get("monitor_id").and_then(crate::value::lenient_str).unwrap_or_default();
        if !is_monitor_id(&monitor_id) {
            return Err(RpcError::invalid_params("nodeInventory's answer names no agent-monitor id"));
        }
        let live = match m.get("live") {
            Some(Value::Array(items)) => items.iter().filter_map(crate::value::lenient_int).collect(),
            _ => Vec::new(),
        };
        Ok(InventoryReply { monitor_id, live })
    }
}

/// `agentMonitor.nodeSalvaged`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSalvaged {
    pub node: String,
    pub domain: String,
    pub pair: Pair,
    pub generation: i64,
    /// Why the DomainMonitor salvaged it ("its job is gone: ...").
    pub reason: String,
    /// What the guest saved, with its SHA-256; `None` when it saved nothing.
    pub saved: Option<(Vec<u8>, String)>,
}

impl NodeSalvaged {
    pub fn from_params(params: &[Value]) -> Result<NodeSalvaged, RpcError> {
        let mut r = StructReader::single(params)?;
        let node = read_node(&mut r)?;
        let domain = r.req_str("domain")?;
        let pair = Pair::new(&r.req_str("project")?, &r.req_str("viewer")?)?;
        let generation = r.req_int("generation")?;
        if generation <= 0 {
            return Err(RpcError::invalid_params("generation must be positive"));
        }
        let reason = r.req_str("reason")?;
        if reason.len() > MAX_REASON || reason.contains('\0') {
            return Err(RpcError::invalid_params(format!("reason must be at most {MAX_REASON} bytes, without NUL")));
        }
        let saved = match (r.opt_bytes("viewerdb")?, r.opt_str("checksum")?) {
            (Some(db), Some(sum)) => {
                let sum = sum.to_ascii_lowercase();
                if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(RpcError::new(FaultCode::BadChecksum, "checksum must be 64 hex digits (SHA-256)"));
                }
                Some((db, sum))
            }
            (None, None) => None,
            _ => return Err(RpcError::invalid_params("viewerdb and checksum come together")),
        };
        r.finish()?;
        Ok(NodeSalvaged { node, domain, pair, generation, reason, saved })
    }

    pub fn to_params(&self) -> Vec<Value> {
        let mut b = StructBuilder::new()
            .str("node", self.node.clone())
            .str("domain", self.domain.clone())
            .str("project", self.pair.project())
            .str("viewer", self.pair.viewer())
            .int("generation", self.generation)
            .str("reason", self.reason.clone());
        if let Some((db, sum)) = &self.saved {
            b = b.bytes("viewerdb", db.clone()).str("checksum", sum.clone());
        }
        vec![b.build()]
    }
}

/// The answer to `nodeSalvaged`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SalvagedReply {
    /// Whether the database was kept (the next launch restores it).
    pub kept: bool,
    /// What agent-monitor made of it, in words.
    pub note: String,
}

impl SalvagedReply {
    pub fn to_value(&self) -> Value {
        StructBuilder::new().bool("kept", self.kept).str("note", self.note.clone()).build()
    }

    pub fn from_value(v: &Value) -> Result<SalvagedReply, RpcError> {
        let Value::Struct(m) = v else {
            return Err(RpcError::invalid_params("nodeSalvaged's answer must be a struct"));
        };
        Ok(SalvagedReply {
            kept: matches!(m.get("kept"), Some(Value::Boolean(true))),
            note: m.get("note").and_then(crate::value::lenient_str).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_refuse_what_is_not_a_vrun_domain() {
        let p = Pair::new("p1", "CodeDX").unwrap();
        let d = NodeDomain {
            name: p.domain_name("00aa11bb22cc", 3),
            pair: p.clone(),
            generation: 3,
            running: true,
            owner: "00aa11bb22cc".into(),
        };
        let inv = NodeInventory { node: "n1".into(), domains: vec![d.clone()] };
        assert_eq!(NodeInventory::from_params(&inv.to_params()).unwrap(), inv);
        let other_pair = NodeInventory {
            node: "n1".into(),
            domains: vec![NodeDomain { name: p.domain_name("00aa11bb22cc", 4), ..d.clone() }],
        };
        assert!(NodeInventory::from_params(&other_pair.to_params()).is_err(), "name and generation disagree");
        let bad_node = NodeInventory { node: "n1;reboot".into(), domains: vec![] };
        assert_eq!(NodeInventory::from_params(&bad_node.to_params()).unwrap_err().code, FaultCode::InvalidName);

        let s = NodeSalvaged {
            node: "n1".into(),
            domain: d.name.clone(),
            pair: p,
            generation: 3,
            reason: "its job is gone".into(),
            saved: Some((b"db".to_vec(), "ab".repeat(32))),
        };
        assert_eq!(NodeSalvaged::from_params(&s.to_params()).unwrap(), s);
        let r = InventoryReply { monitor_id: "00aa11bb22cc".into(), live: vec![3, 9] };
        assert_eq!(InventoryReply::from_value(&r.to_value()).unwrap(), r);
    }
}
