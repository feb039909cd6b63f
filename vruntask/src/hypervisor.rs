//! The VM manager sees the hypervisor only through [`Hypervisor`]; [`Libvirt`] implements
//! it with the `virt` crate (any URI: `qemu:///system` in production, `test:///default`
//! for fast tests of the same code).

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};

#[derive(Debug, thiserror::Error)]
#[error("libvirt: {0}")]
pub struct HvError(pub String);

impl From<virt::error::Error> for HvError {
    fn from(e: virt::error::Error) -> HvError {
        HvError(e.message().to_string())
    }
}

/// What the hypervisor says about a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmState {
    Running,
    /// Defined but not running (the guest powered off, or it was destroyed).
    Off,
    /// No such domain.
    Missing,
}

pub trait Hypervisor: Send + Sync {
    /// Defines the domain from XML; returns its name.
    fn define(&self, xml: &str) -> Result<String, HvError>;
    /// Starts a defined domain.
    fn start(&self, name: &str) -> Result<(), HvError>;
    /// Defines the domain from XML and starts it; a domain that does not start is undefined.
    fn define_and_start(&self, xml: &str) -> Result<(), HvError> {
        let name = self.define(xml)?;
        if let Err(e) = self.start(&name) {
            // Leave nothing behind when the start fails.
            let _ = self.undefine(&name);
            return Err(e);
        }
        Ok(())
    }
    fn state(&self, name: &str) -> Result<VmState, HvError>;
    /// Presses the ACPI power button.
    fn shutdown(&self, name: &str) -> Result<(), HvError>;
    /// Pulls the plug. Not an error when the domain is not running.
    fn destroy(&self, name: &str) -> Result<(), HvError>;
    /// Removes the definition. Not an error when the domain is already gone.
    fn undefine(&self, name: &str) -> Result<(), HvError>;
}

/// A libvirt connection that re-opens itself: libvirtd may be restarted while a viewer runs
/// (QEMU keeps running meanwhile), and the run must still end in a proper teardown.
pub struct Libvirt {
    uri: String,
    conn: std::sync::Mutex<Connect>,
}

impl Libvirt {
    pub fn connect(uri: &str) -> Result<Libvirt, HvError> {
        // libvirt prints every error to stderr by default; we report them ourselves.
        virt::error::clear_error_callback();
        Ok(Libvirt { uri: uri.to_string(), conn: std::sync::Mutex::new(Connect::open(Some(uri))?) })
    }

    /// Runs `f` on the connection; if it fails on a dead connection, re-opens it and tries once more.
    fn with_conn<T>(&self, f: impl Fn(&Connect) -> Result<T, HvError>) -> Result<T, HvError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        match f(&conn) {
            Err(e) if !conn.is_alive().unwrap_or(false) => {
                tracing::debug!(uri = %self.uri, error = %e, "libvirt connection lost; reconnecting");
                *conn = Connect::open(Some(&self.uri))?;
                f(&conn)
            }
            other => other,
        }
    }

    fn lookup(conn: &Connect, name: &str) -> Result<Option<Domain>, HvError> {
        match conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Hypervisor for Libvirt {
    fn define(&self, xml: &str) -> Result<String, HvError> {
        self.with_conn(|conn| Ok(conn.define_domain_xml(xml)?.name()?))
    }

    fn start(&self, name: &str) -> Result<(), HvError> {
        self.with_conn(|conn| match Self::lookup(conn, name)? {
            Some(dom) => Ok(dom.create().map(drop)?),
            None => Err(HvError(format!("domain {name} is not defined"))),
        })
    }

    fn state(&self, name: &str) -> Result<VmState, HvError> {
        self.with_conn(|conn| {
            let Some(dom) = Self::lookup(conn, name)? else { return Ok(VmState::Missing) };
            let (state, _) = dom.state()?;
            Ok(match state.known() {
                Some(DomainState::Shutoff) | Some(DomainState::Crashed) => VmState::Off,
                _ => VmState::Running,
            })
        })
    }

    fn shutdown(&self, name: &str) -> Result<(), HvError> {
        self.with_conn(|conn| match Self::lookup(conn, name)? {
            Some(dom) => Ok(dom.shutdown()?),
            None => Ok(()),
        })
    }

    fn destroy(&self, name: &str) -> Result<(), HvError> {
        self.with_conn(|conn| match Self::lookup(conn, name)? {
            Some(dom) if dom.is_active()? => Ok(dom.destroy()?),
            _ => Ok(()),
        })
    }

    fn undefine(&self, name: &str) -> Result<(), HvError> {
        self.with_conn(|conn| match Self::lookup(conn, name)? {
            Some(dom) => {
                if dom.is_active()? {
                    dom.destroy()?;
                }
                Ok(dom.undefine()?)
            }
            None => Ok(()),
        })
    }
}
