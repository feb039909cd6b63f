//! XML-RPC on the wire, for agent-monitor's `POST /RPC2`: parse a `methodCall` into dxr
//! [`Value`]s and write `methodResponse`s, directly over the bytes.
//!
//! dxr goes through serde and quick-xml's serde layer, which allocates for every element and
//! was a quarter of the daemon's CPU per status call (docs/performance.md). The data model
//! stays dxr's [`Value`], so every method's `from_params`/`to_value` is unchanged; only the
//! text at either end is handled here.
//!
//! What is accepted is standard XML-RPC as Python's `xmlrpc`, Perl's `RPC::XML`, dxr and Java
//! clients send it, decoded exactly as dxr decodes it (the `xmlrpc_call` fuzz target checks
//! that every call accepted here is accepted by dxr with the same values). It is stricter than
//! dxr about what is not XML-RPC: no `<!DOCTYPE>` (so no entity expansion at all), no
//! attributes or namespace prefixes, no unknown elements, nothing after the root element, and
//! arrays and structs nest at most [`MAX_NESTING`](crate::value::MAX_NESTING) deep, checked
//! while parsing (the parser is recursive; the bound keeps its stack small).

mod lex;
mod parse;
mod write;

pub use parse::{parse_call, Call};
pub use write::{write_fault, write_response, StructAnswer};

/// Why a request body is not an XML-RPC call (becomes a `MalformedRequest` fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

#[cfg(test)]
mod tests;
