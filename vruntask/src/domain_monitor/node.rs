//! The node's libvirt as the DomainMonitor sees it: the vrun domains whose metadata names
//! this node, and the three things it ever does to one (power button, read where its output
//! disk is, remove it). Each function opens its own connection (closed on return), so a
//! restarted libvirtd costs nothing; callers run them off the async tasks, under a deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vrun_proto::domain::{parse_metadata, DomainMeta, METADATA_URI};

/// One vrun domain of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDom {
    pub name: String,
    pub meta: DomainMeta,
    pub running: bool,
}

fn connect(uri: &str) -> Result<virt::connect::Connect, String> {
    virt::error::clear_error_callback();
    virt::connect::Connect::open(Some(uri)).map_err(|e| format!("cannot connect to {uri}: {}", e.message()))
}

fn meta_of(dom: &virt::domain::Domain) -> Option<DomainMeta> {
    dom.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(METADATA_URI), 0)
        .ok()
        .and_then(|m| parse_metadata(&m))
}

/// Every vrun domain whose metadata names `node` (of any owner; the caller filters).
pub fn list(uri: &str, node: &str) -> Result<Vec<NodeDom>, String> {
    let conn = connect(uri)?;
    let all = conn.list_all_domains(0).map_err(|e| format!("cannot list domains: {}", e.message()))?;
    let mut out = Vec::new();
    for dom in all {
        let Some(meta) = meta_of(&dom).filter(|m| m.node.as_deref() == Some(node)) else { continue };
        let (Ok(name), Ok(running)) = (dom.name(), dom.is_active()) else { continue };
        out.push(NodeDom { name, meta, running });
    }
    Ok(out)
}

/// Looks up `name` and checks it is still the domain that was judged (same metadata), so
/// nothing else of that name is ever touched.
fn ours(conn: &virt::connect::Connect, d: &NodeDom) -> Result<Option<virt::domain::Domain>, String> {
    let dom = match conn.lookup_domain_by_name(&d.name) {
        Ok(dom) => dom,
        Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => return Ok(None),
        Err(e) => return Err(e.message().to_string()),
    };
    if meta_of(&dom).as_ref() != Some(&d.meta) {
        return Err(format!("domain {} changed its metadata; not touching it", d.name));
    }
    Ok(Some(dom))
}

/// Presses the power button and waits up to `wait` for the guest to save its database and
/// power off; a guest that does not is destroyed (what it saved so far stays on its disk).
/// Returns whether the guest powered off by itself.
pub fn power_off(uri: &str, d: &NodeDom, wait: Duration) -> Result<bool, String> {
    let conn = connect(uri)?;
    let Some(dom) = ours(&conn, d)? else { return Ok(true) };
    if !dom.is_active().unwrap_or(false) {
        return Ok(true);
    }
    let _ = dom.shutdown();
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if !dom.is_active().unwrap_or(true) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if dom.is_active().unwrap_or(false) {
        dom.destroy().map_err(|e| format!("cannot destroy {}: {}", d.name, e.message()))?;
    }
    Ok(false)
}

/// The domain's output disk (vruntask names it `output.img`), where its guest saves.
pub fn output_disk(uri: &str, d: &NodeDom) -> Result<Option<PathBuf>, String> {
    let conn = connect(uri)?;
    let Some(dom) = ours(&conn, d)? else { return Ok(None) };
    let xml = dom.xml_desc(0).map_err(|e| e.message().to_string())?;
    Ok(xml
        .split("<source file='")
        .skip(1)
        .chain(xml.split("<source file=\"").skip(1))
        .filter_map(|rest| rest.split(['\'', '"']).next())
        .find(|p| p.ends_with("/output.img"))
        .map(PathBuf::from))
}

/// Destroys (if running) and undefines the domain.
pub fn remove(uri: &str, d: &NodeDom) -> Result<(), String> {
    let conn = connect(uri)?;
    let Some(dom) = ours(&conn, d)? else { return Ok(()) };
    if dom.is_active().unwrap_or(false) {
        dom.destroy().map_err(|e| format!("cannot destroy {}: {}", d.name, e.message()))?;
    }
    dom.undefine().map_err(|e| format!("cannot undefine {}: {}", d.name, e.message()))
}
