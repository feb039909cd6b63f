//! vrun's wire protocol, shared by agent-monitor, vruntask, launchviewer and tests.
//!
//! Only the contract lives here: what travels between processes and what it means.
//! Behaviour (storage, launching, VMs) lives in the binaries.
//!
//! # Layout
//! - [`names`]: validation of project and viewer names (they become VM, file and job names).
//! - [`state`]: the viewer instance lifecycle and its legal transitions.
//! - [`fault`]: every XML-RPC fault code and its meaning.
//! - [`value`]: lenient decoding of XML-RPC structs (optional members may be absent).
//! - [`methods`]: method names and typed requests and replies; [`node`]: those of a
//!   node's DomainMonitor.
//! - [`wire`]: XML-RPC text ↔ values for the server (parse calls, write answers).
//! - [`job`]: the job description agent-monitor hands to `vruntask run`.
//! - [`domain`]: the libvirt metadata that marks a domain as vrun's.
//! - [`outdisk`]: the output disk on which a guest hands back its viewer database.
//! - [`frontdoor`]: the front door's signed login tokens, sessions and viewer proofs.
//! - [`platform`]: the checksum of a platform image (verified on each node).
//! - [`client`]: a typed XML-RPC client (feature `client`).
//! - [`exec`]: a child's signals and descriptors before `exec` (feature `exec`).
//! - [`lifecycle`]: libvirt lifecycle events that wake a sweep (feature `libvirt`).

pub mod domain;
pub mod fault;
pub mod frontdoor;
pub mod job;
pub mod methods;
pub mod names;
pub mod node;
pub mod outdisk;
pub mod platform;
pub mod state;
pub mod value;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "exec")]
pub mod exec;
#[cfg(feature = "libvirt")]
pub mod lifecycle;

pub use fault::{FaultCode, RpcError};
pub use names::{validate_name, Pair};
pub use state::ViewerState;
