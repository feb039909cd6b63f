//! Everything checked before anyone is contacted: names, the results file and its format,
//! the source archive, and the push checksum.
//!
//! Refusing a wrong file here, rather than letting the viewer's import job fail, means a
//! bad click never launches a VM.

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};
use vrun_proto::names::NameError;
use vrun_proto::{validate_name, Pair};

use crate::Args;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Name(#[from] NameError),
    #[error("package name {name:?} {why}{hint}")]
    Package { name: String, why: &'static str, hint: &'static str },
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("results file {path} is neither SARIF 2.1.0 nor SCARF: {why}")]
    Format { path: PathBuf, why: String },
    #[error("source archive {path} is not a zip file")]
    NotZip { path: PathBuf },
    #[error("no results file (--results FILE or --file_path FILE)")]
    NoResults,
    #[error("{0} results files; at most {MAX_RESULTS_FILES} in one View")]
    TooManyResults(usize),
}

/// Most results files in one View (SWAMP's are a handful; each is read into memory).
pub const MAX_RESULTS_FILES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sarif,
    Scarf,
}

/// One checked results file.
#[derive(Debug)]
pub struct Results {
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// File name sent with its part.
    pub name: String,
}

/// A checked View request, ready to send.
#[derive(Debug)]
pub struct Input {
    pub pair: Pair,
    pub user: Option<String>,
    /// The Code Dx project the results go into.
    pub package: String,
    /// One or more results files (SWAMP views several at once): one analysis, parts
    /// `file1`…`fileN`.
    pub results: Vec<Results>,
    pub source: Option<Vec<u8>>,
    /// Identity of this push (see [`checksum`]).
    pub checksum: String,
}

pub fn prepare(args: &Args) -> Result<Input, InputError> {
    let pair = Pair::new(&args.project, &args.viewer)?;
    if let Some(u) = &args.user {
        validate_name("user", u)?;
    }
    let first = args.results.first().ok_or(InputError::NoResults)?;
    if args.results.len() > MAX_RESULTS_FILES {
        return Err(InputError::TooManyResults(args.results.len()));
    }
    let package = match &args.package {
        Some(p) => check_package(p, "")?,
        None => {
            let stem = first.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            check_package(&stem, " (taken from the results file name; pass --package NAME)")?
        }
    };
    let mut results = Vec::new();
    for path in &args.results {
        let bytes = read("results file", path)?;
        let kind = detect(&bytes).map_err(|why| InputError::Format { path: path.clone(), why })?;
        results.push(Results { kind, name: results_name(path, kind), bytes });
    }
    let source = match &args.source {
        Some(path) => {
            let bytes = read("source archive", path)?;
            if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
                return Err(InputError::NotZip { path: path.clone() });
            }
            Some(bytes)
        }
        None => None,
    };
    let digests: Vec<&[u8]> = results.iter().map(|r| r.bytes.as_slice()).collect();
    let checksum = checksum(&package, &digests, source.as_deref());
    Ok(Input { pair, user: args.user.clone(), package, results, source, checksum })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|source| InputError::Read { what, path: path.to_owned(), source })
}

/// The viewer's rule for project names: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$` and no `..`
/// (it refuses anything else with a 400, which would surface only after a VM boot).
fn check_package(name: &str, hint: &'static str) -> Result<String, InputError> {
    let bad = |why| Err(InputError::Package { name: name.to_owned(), why, hint });
    let b = name.as_bytes();
    match b.first() {
        None => return bad("is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return bad("must start with a letter or digit"),
        _ => {}
    }
    if b.len() > 64 {
        return bad("is longer than 64 characters");
    }
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c)) {
        return bad("may contain only letters, digits, '_', '.' and '-'");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(name.to_owned())
}

/// The original name when it is plain (so the viewer's messages name the file the user
/// knows); otherwise a neutral name with the original extension, or one fitting the kind.
fn results_name(path: &Path, kind: Kind) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if check_package(&name, "").is_ok() {
        return name;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .filter(|e| !e.is_empty() && e.len() <= 16 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    let ext = ext.unwrap_or_else(|| if kind == Kind::Sarif { "sarif".into() } else { "xml".into() });
    format!("results.{ext}")
}

/// SARIF: a JSON object with `"version": "2.1.0"` and `runs`. SCARF: XML whose root element
/// is `AnalyzerReport`. The JSON is parsed in full (so a truncated file is caught here) but
/// without building it in memory; the XML only up to its root element.
pub fn detect(bytes: &[u8]) -> Result<Kind, String> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &body[i..]).unwrap_or(&[]);
    match start.first() {
        None => Err("the file is empty".into()),
        Some(b'{') => {
            #[derive(serde::Deserialize)]
            struct Head {
                version: Option<String>,
                runs: Option<IgnoredAny>,
            }
            let head: Head = serde_json::from_slice(body).map_err(|e| format!("not valid JSON ({e})"))?;
            match (head.version.as_deref(), head.runs) {
                (Some("2.1.0"), Some(_)) => Ok(Kind::Sarif),
                (Some("2.1.0"), None) => Err("JSON without \"runs\"".into()),
                (Some(v), _) => Err(format!("SARIF version {v:?}, expected \"2.1.0\"")),
                (None, _) => Err("JSON without a SARIF \"version\"".into()),
            }
        }
        Some(b'<') => match xml_root(start) {
            Some("AnalyzerReport") => Ok(Kind::Scarf),
            Some(other) => Err(format!("XML with root element <{other}>, expected <AnalyzerReport>")),
            None => Err("XML without a root element".into()),
        },
        Some(_) if start.starts_with(&[0x1f, 0x8b]) => Err("gzip-compressed; pass the uncompressed file".into()),
        Some(_) => Err("neither JSON nor XML".into()),
    }
}

/// Name of the first element, skipping the declaration, comments, processing instructions
/// and a DOCTYPE (without an internal subset, which SCARF never has).
fn xml_root(mut s: &[u8]) -> Option<&str> {
    loop {
        s = &s[s.iter().position(|b| !b.is_ascii_whitespace())?..];
        let skip_to = |s: &[u8], end: &[u8]| s.windows(end.len()).position(|w| w == end).map(|i| i + end.len());
        if s.starts_with(b"<?") {
            s = &s[skip_to(s, b"?>")?..];
        } else if s.starts_with(b"<!--") {
            s = &s[skip_to(s, b"-->")?..];
        } else if s.starts_with(b"<!") {
            s = &s[skip_to(s, b">")?..];
        } else if s.starts_with(b"<") {
            let name = &s[1..];
            let end = name.iter().position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')?;
            return std::str::from_utf8(&name[..end]).ok().filter(|n| !n.is_empty());
        } else {
            return None;
        }
    }
}

/// SHA-256 over the package name and the digests of the results (in order) and the
/// source. The package is part of it because agent-monitor keys a push by checksum alone:
/// the same file viewed as another package must still reach that package's project.
/// One results file hashes as it always did, so pushes recorded before several files
/// were possible keep matching.
pub fn checksum(package: &str, results: &[&[u8]], source: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    h.update(format!("launchviewer push v1\npackage {package}\n"));
    for r in results {
        h.update(format!("results {}\n", hex::encode(Sha256::digest(r))));
    }
    if let Some(src) = source {
        h.update(format!("source {}\n", hex::encode(Sha256::digest(src))));
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect(b"\xEF\xBB\xBF {\"version\":\"2.1.0\",\"runs\":[{\"x\":[1,2]}]}"), Ok(Kind::Sarif));
        let scarf = b"<?xml version=\"1.0\"?>\n<!-- c -->\n<!DOCTYPE x>\n<AnalyzerReport tool_name=\"c\">";
        assert_eq!(detect(scarf), Ok(Kind::Scarf));
        assert_eq!(detect(b"<AnalyzerReport/>"), Ok(Kind::Scarf));
        for bad in [
            &b""[..],
            b"hello",
            b"{\"version\":\"2.0.0\",\"runs\":[]}",
            b"{\"runs\":[]}",
            b"{\"version\":\"2.1.0\",\"runs\":[",
            b"<html><body/></html>",
            b"\x1f\x8b\x08",
        ] {
            assert!(detect(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn package_names() {
        for ok in ["sample", "a.b-c_d", "9"] {
            assert!(check_package(ok, "").is_ok(), "{ok}");
        }
        for bad in ["", ".x", "a b", "a..b", "ü", &"x".repeat(65)] {
            assert!(check_package(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksum_depends_on_every_part() {
        let a = checksum("p", &[b"r"], None);
        assert_eq!(a.len(), 64);
        assert_ne!(a, checksum("q", &[b"r"], None));
        assert_ne!(a, checksum("p", &[b"s"], None));
        assert_ne!(a, checksum("p", &[b"r"], Some(b"")));
        assert_ne!(a, checksum("p", &[b"r", b"s"], None));
        assert_ne!(checksum("p", &[b"s", b"r"], None), checksum("p", &[b"r", b"s"], None));
    }

    #[test]
    fn results_names_keep_extension() {
        assert_eq!(results_name(Path::new("/x/a.sarif"), Kind::Sarif), "a.sarif");
        assert_eq!(results_name(Path::new("/x/my file.xml"), Kind::Scarf), "results.xml");
        assert_eq!(results_name(Path::new("/x/ü"), Kind::Sarif), "results.sarif");
    }
}
