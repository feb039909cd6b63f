//! How a libvirt domain says it belongs to vrun: a `<metadata>` element naming its pair,
//! generation and owner (the id of the agent-monitor that launched it). vruntask writes it;
//! agent-monitor's inventory reads it. Domains without it belong to someone else and are
//! never touched; domains of another owner belong to another agent-monitor on the same
//! hypervisor and are only listed, never salvaged, destroyed or reported on.
//!
//! The metadata also names the hypervisor node the domain runs on: a node's DomainMonitor
//! (`vruntask domain-monitor`) acts only on domains of its own node, even where several
//! nodes share one libvirtd (as in the tests).

use crate::names::{is_monitor_id, is_node_name, Pair};

/// Namespace of vrun's domain metadata element.
pub const METADATA_URI: &str = "http://vrun.invalid/xmlns/instance/1";
/// Prefix used for the element in domain XML.
pub const METADATA_PREFIX: &str = "vrun";

/// What a vrun domain's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainMeta {
    pub pair: Pair,
    pub generation: i64,
    /// The launching agent-monitor's id; `None` on domains made before ids existed, which
    /// no agent-monitor can claim and so none touches.
    pub owner: Option<String>,
    /// The node whose vruntask defined it; `None` on domains made before nodes were named.
    pub node: Option<String>,
}

/// The element to put inside `<metadata>`. Names, the owner id and the node name are
/// validated, so no escaping is needed.
pub fn metadata_element(pair: &Pair, generation: i64, owner: &str, node: &str) -> String {
    debug_assert!(is_monitor_id(owner) && is_node_name(node));
    format!(
        "<{METADATA_PREFIX}:instance xmlns:{METADATA_PREFIX}=\"{METADATA_URI}\" owner=\"{owner}\" node=\"{node}\" project=\"{}\" viewer=\"{}\" generation=\"{generation}\"/>",
        pair.project(),
        pair.viewer()
    )
}

/// Reads the element back as libvirt returns it (prefix and namespace declaration vary).
/// Anything that does not parse to a valid pair and positive generation is `None`; an
/// owner attribute that is present but not an id (or a node that is not a node name) makes
/// the whole element invalid.
pub fn parse_metadata(xml: &str) -> Option<DomainMeta> {
    let attr = |name: &str| -> Option<&str> {
        let pat = format!(" {name}=\"");
        let start = xml.find(&pat)? + pat.len();
        let len = xml[start..].find('"')?;
        Some(&xml[start..start + len])
    };
    let pair = Pair::new(attr("project")?, attr("viewer")?).ok()?;
    let generation: i64 = attr("generation")?.parse().ok()?;
    let owner = match attr("owner") {
        Some(o) if is_monitor_id(o) => Some(o.to_string()),
        Some(_) => return None,
        None => None,
    };
    let node = match attr("node") {
        Some(n) if is_node_name(n) => Some(n.to_string()),
        Some(_) => return None,
        None => None,
    };
    (generation > 0).then_some(DomainMeta { pair, generation, owner, node })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let p = Pair::new("p1", "CodeDX").unwrap();
        let m = parse_metadata(&metadata_element(&p, 42, "00aa11bb22cc", "n2")).unwrap();
        assert_eq!(
            (m.pair, m.generation, m.owner.as_deref(), m.node.as_deref()),
            (p, 42, Some("00aa11bb22cc"), Some("n2"))
        );
        let libvirt_form = "<instance xmlns=\"http://vrun.invalid/xmlns/instance/1\" owner=\"00aa11bb22cc\" project=\"a\" viewer=\"b\" generation=\"7\"/>";
        assert_eq!(parse_metadata(libvirt_form).unwrap().generation, 7);
        let ownerless = "<instance project=\"a\" viewer=\"b\" generation=\"7\"/>";
        assert_eq!(parse_metadata(ownerless).unwrap().owner, None);
        assert_eq!(parse_metadata(ownerless).unwrap().node, None, "made before nodes were named");
        assert_eq!(parse_metadata("<instance node=\"n1'\" project=\"a\" viewer=\"b\" generation=\"7\"/>"), None);
        assert_eq!(parse_metadata("<instance owner=\"../x\" project=\"a\" viewer=\"b\" generation=\"7\"/>"), None);
        assert_eq!(parse_metadata("<instance project=\"../x\" viewer=\"b\" generation=\"7\"/>"), None);
        assert_eq!(parse_metadata("<instance project=\"a\" viewer=\"b\" generation=\"-1\"/>"), None);
    }
}
