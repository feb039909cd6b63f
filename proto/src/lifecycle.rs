//! libvirt lifecycle events as a wake-up (feature `libvirt`): agent-monitor's sweep and a
//! node's DomainMonitor both reconcile at once when a domain stops or vanishes, instead of
//! at their next periodic sweep.
//!
//! The `virt` crate has no safe wrapper for domain events, so this module registers one
//! callback through `virt::sys`. The callback only pokes a `Notify`; every decision stays
//! with the caller's sweep. When libvirtd goes away the connection dies and is re-opened
//! every few seconds; the periodic sweep covers the gap.

use std::os::raw::{c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use virt::sys;

unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    _dom: sys::virDomainPtr,
    _event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: `opaque` is the Arc<Notify> pointer registered below; libvirt keeps it alive
    // until `free_opaque` runs.
    let wake = unsafe { &*(opaque as *const Notify) };
    wake.notify_one();
    0
}

unsafe extern "C" fn free_opaque(opaque: *mut c_void) {
    // SAFETY: the pointer came from Arc::into_raw in `listen_once`, and libvirt calls this once.
    drop(unsafe { Arc::from_raw(opaque as *const Notify) });
}

/// Starts the listener thread. It runs for the daemon's lifetime.
pub fn spawn(uri: String, wake: Arc<Notify>) {
    let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(move || {
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::warn!(error = %e.message(), "no libvirt event loop; relying on periodic sweeps");
            return;
        }
        loop {
            if let Err(e) = listen_once(&uri, &wake) {
                tracing::debug!(%uri, error = %e, "libvirt events unavailable; retrying");
            }
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the libvirt event thread");
    }
}

fn listen_once(uri: &str, wake: &Arc<Notify>) -> Result<(), String> {
    let conn = virt::connect::Connect::open(Some(uri)).map_err(|e| e.message().to_string())?;
    let opaque = Arc::into_raw(Arc::clone(wake)) as *mut c_void;
    // SAFETY: the lifecycle callback has the signature libvirt calls for
    // VIR_DOMAIN_EVENT_ID_LIFECYCLE; registering it through the generic type is how the C API
    // is meant to be used (VIR_DOMAIN_EVENT_CALLBACK). `opaque` is freed by `free_opaque`.
    let id = unsafe {
        let cb = std::mem::transmute::<
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, c_int, c_int, *mut c_void) -> c_int,
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void),
        >(on_lifecycle);
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            Some(cb),
            opaque,
            Some(free_opaque),
        )
    };
    if id < 0 {
        // SAFETY: registration failed, so libvirt did not take the pointer.
        drop(unsafe { Arc::from_raw(opaque as *const Notify) });
        return Err("cannot register for domain events".into());
    }
    tracing::info!(%uri, "listening to libvirt lifecycle events");
    wake.notify_one();
    while conn.is_alive().unwrap_or(false) {
        if virt::event::event_run_default_impl().is_err() {
            break;
        }
    }
    // SAFETY: deregistering the id returned above on the same connection.
    unsafe { sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), id) };
    Err("connection to libvirt lost".into())
}
