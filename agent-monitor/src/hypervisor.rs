//! What the hypervisor says, which is the truth: the domains that carry vrun's metadata.
//!
//! agent-monitor sees the hypervisor only through the [`Hypervisor`] trait object. Domains
//! without vrun's metadata are invisible here, so they can never be touched; domains that
//! another agent-monitor owns (their metadata names another id) are listed as foreign and
//! are never salvaged, destroyed or reported on.

use vrun_proto::domain::{parse_metadata, METADATA_URI};
use vrun_proto::Pair;

/// One of vrun's domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrunDomain {
    pub name: String,
    pub pair: Pair,
    pub generation: i64,
    pub running: bool,
    /// The id of the agent-monitor that launched it (`None`: made before ids existed).
    pub owner: Option<String>,
}

impl VrunDomain {
    /// Whether the agent-monitor with id `me` owns this domain.
    pub fn owned_by(&self, me: &str) -> bool {
        self.owner.as_deref() == Some(me)
    }
}

pub trait Hypervisor: Send + Sync {
    /// Every domain carrying vrun's metadata, of any owner.
    fn inventory(&self) -> Result<Vec<VrunDomain>, String>;
    /// Destroys and undefines a domain of ours. Its database is not salvaged here.
    fn remove(&self, name: &str) -> Result<(), String>;
    /// Presses a domain's ACPI power button (the guest then saves its database and powers off).
    fn shutdown(&self, name: &str) -> Result<(), String>;
    /// Whether the domain runs; `None` when it does not exist (or cannot be asked).
    fn is_running(&self, name: &str) -> Option<bool>;
    /// The domain's output disk (vruntask names it `output.img`), where a guest saves its database.
    fn output_disk(&self, name: &str) -> Option<std::path::PathBuf>;
    /// Whether there is a hypervisor to ask at all (`false`: `--libvirt-uri none`, where the
    /// nodes' DomainMonitors look after the domains).
    fn configured(&self) -> bool {
        true
    }
}

/// How long an inventory may take before the caller treats the hypervisor as unreachable:
/// a hung libvirtd must not hang `agent-monitor status` or the sweep.
pub const INVENTORY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// [`Hypervisor::inventory`] off the async tasks and within [`INVENTORY_DEADLINE`]; the
/// error says why there is no answer.
pub async fn inventory_within(hv: &std::sync::Arc<dyn Hypervisor>) -> Result<Vec<VrunDomain>, String> {
    let hv = std::sync::Arc::clone(hv);
    match tokio::time::timeout(INVENTORY_DEADLINE, tokio::task::spawn_blocking(move || hv.inventory())).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Err(format!("inventory failed: {e}")),
        Err(_) => Err(format!("libvirt did not answer the inventory within {} s", INVENTORY_DEADLINE.as_secs())),
    }
}

/// libvirt at a URI, connected per call (closed on drop): libvirtd may restart under a
/// long-lived daemon, and a connection costs a millisecond. `owner` is this daemon's id:
/// only domains whose metadata names it may be shut down or removed.
pub struct Libvirt {
    uri: String,
    owner: String,
}

impl Libvirt {
    pub fn new(uri: &str, owner: &str) -> Libvirt {
        virt::error::clear_error_callback();
        Libvirt { uri: uri.to_string(), owner: owner.to_string() }
    }

    fn connect(&self) -> Result<virt::connect::Connect, String> {
        virt::connect::Connect::open(Some(&self.uri))
            .map_err(|e| format!("cannot connect to {}: {}", self.uri, e.message()))
    }
}

impl Libvirt {
    /// Runs `f` on one of our own domains; `Ok(None)` when there is no such domain.
    fn with_ours<T>(
        &self,
        name: &str,
        f: impl FnOnce(&virt::domain::Domain) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        let conn = self.connect()?;
        let dom = match conn.lookup_domain_by_name(name) {
            Ok(d) => d,
            Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => return Ok(None),
            Err(e) => return Err(e.message().to_string()),
        };
        let meta = dom
            .metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(METADATA_URI), 0)
            .ok()
            .and_then(|m| parse_metadata(&m));
        match meta {
            None => return Err(format!("domain {name} is not vrun's; not touching it")),
            Some(m) if m.owner.as_deref() != Some(self.owner.as_str()) => {
                return Err(format!("domain {name} belongs to another agent-monitor; not touching it"))
            }
            Some(_) => {}
        }
        f(&dom).map(Some)
    }
}

impl Hypervisor for Libvirt {
    fn inventory(&self) -> Result<Vec<VrunDomain>, String> {
        let conn = self.connect()?;
        let domains = conn.list_all_domains(0).map_err(|e| e.message().to_string());
        let mut out = Vec::new();
        for dom in domains.unwrap_or_default() {
            let meta = dom.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(METADATA_URI), 0);
            let Some(m) = meta.ok().and_then(|m| parse_metadata(&m)) else { continue };
            let (Ok(name), Ok(running)) = (dom.name(), dom.is_active()) else { continue };
            out.push(VrunDomain { name, pair: m.pair, generation: m.generation, running, owner: m.owner });
        }
        Ok(out)
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        // Only ever our own: with_ours checks the metadata before pulling the plug.
        self.with_ours(name, |dom| {
            if dom.is_active().unwrap_or(false) {
                dom.destroy().map_err(|e| e.message().to_string())?;
            }
            dom.undefine().map_err(|e| e.message().to_string())
        })
        .map(drop)
    }

    fn shutdown(&self, name: &str) -> Result<(), String> {
        self.with_ours(name, |dom| dom.shutdown().map_err(|e| e.message().to_string())).map(drop)
    }

    fn is_running(&self, name: &str) -> Option<bool> {
        self.with_ours(name, |dom| dom.is_active().map_err(|e| e.message().to_string())).ok().flatten()
    }

    fn output_disk(&self, name: &str) -> Option<std::path::PathBuf> {
        let xml = self.with_ours(name, |dom| dom.xml_desc(0).map_err(|e| e.message().to_string())).ok()??;
        xml.split("<source file='")
            .skip(1)
            .chain(xml.split("<source file=\"").skip(1))
            .filter_map(|rest| rest.split(['\'', '"']).next())
            .find(|p| p.ends_with("/output.img"))
            .map(std::path::PathBuf::from)
    }
}

/// No hypervisor configured (`--libvirt-uri none`): everything is unknown, nothing is removed.
pub struct NoHypervisor;

impl Hypervisor for NoHypervisor {
    fn inventory(&self) -> Result<Vec<VrunDomain>, String> {
        Err("no hypervisor configured".into())
    }

    fn remove(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    fn shutdown(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    fn is_running(&self, _name: &str) -> Option<bool> {
        None
    }

    fn output_disk(&self, _name: &str) -> Option<std::path::PathBuf> {
        None
    }

    fn configured(&self) -> bool {
        false
    }
}
