//! A Code Dx compatible results viewer that runs inside a viewer VM.
//!
//! SWAMP pushed analysis results (SCARF XML, and here also SARIF 2.1.0) into a Code Dx
//! instance through a small part of its REST API, and users triaged the findings in the
//! browser behind SWAMP's proxy. This crate provides that API and a plain HTML UI, with
//! the state in one SQLite file that can be exported and restored as a single archive.
//!
//! # Layout
//!
//! - [`cli`]: argument parsing and exit codes for `serve`, `check`, `export`, `import`.
//! - [`config`]: `run.json`, validation, and the runtime [`config::Config`] and limits.
//! - [`db`]: opening the database, migrations (`sql/viewer/*.sql`), queries for
//!   projects, jobs, findings and triage.
//! - [`import`]: format detection and the streaming SARIF and SCARF parsers, and the
//!   all-or-nothing, fingerprinting writer.
//! - [`archive`]: export/import of the state as one SQLite snapshot file.
//! - [`server`]: the axum server: auth, the JSON API, background jobs, HTML pages.
//!
//! The server is started with [`run`] (or [`server::Server`] to separate opening from
//! serving), which tests call on a port-0 listener.

pub mod archive;
pub mod cli;
pub mod config;
pub mod db;
pub mod import;
pub mod server;

pub use config::Config;
pub use server::{run, ServeError};
