//! Project and viewer names.
//!
//! Names become libvirt domain names, file names, job ids (`vrun.<project>.<viewer>`) and
//! script arguments, so they are restricted at the edge: 1 to 64 characters from
//! `[A-Za-z0-9_-]`, starting with a letter or digit. No dots (they separate the parts of an
//! execrunid), no slashes, no whitespace, no shell metacharacters.

use std::fmt;

/// Longest accepted project or viewer name.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {MAX_NAME_LEN} characters")]
    TooLong { what: &'static str },
    #[error("{what} must start with a letter or digit")]
    BadStart { what: &'static str },
    #[error("{what} may contain only letters, digits, '_' and '-'")]
    BadChar { what: &'static str },
}

/// Checks a name; `what` names the field in the error ("project", "viewer").
pub fn validate_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(NameError::Empty { what });
    };
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { what });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart { what });
    }
    if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-') {
        return Err(NameError::BadChar { what });
    }
    Ok(())
}

/// Length of an agent-monitor's id: 12 lowercase hex digits (48 random bits).
pub const MONITOR_ID_LEN: usize = 12;

/// Whether `s` is an agent-monitor id: created once with its state directory, it names the
/// daemon in its domains' names and metadata.
pub fn is_monitor_id(s: &str) -> bool {
    s.len() == MONITOR_ID_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Longest accepted hypervisor node name.
pub const MAX_NODE_LEN: usize = 64;

/// Whether `s` is a hypervisor node's name (a Slurm node name or a short host name): 1 to
/// 64 characters from `[A-Za-z0-9._-]`, starting with a letter or digit. Node names go into
/// domain metadata and log lines, never into a shell or a path.
pub fn is_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NODE_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A validated (project, viewer) pair: the unit of locking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    project: String,
    viewer: String,
}

impl Pair {
    pub fn new(project: &str, viewer: &str) -> Result<Pair, NameError> {
        validate_name("project", project)?;
        validate_name("viewer", viewer)?;
        Ok(Pair { project: project.to_owned(), viewer: viewer.to_owned() })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn viewer(&self) -> &str {
        &self.viewer
    }

    /// SWAMP's job id for a viewer run.
    pub fn execrunid(&self) -> String {
        format!("vrun.{}.{}", self.project, self.viewer)
    }

    /// The libvirt domain name of one generation of the agent-monitor `owner` (see
    /// [`is_monitor_id`]). Unique per owner and generation: two agent-monitors on one
    /// hypervisor both number generations from 1, and a job's first step removes a leftover
    /// of its own name, so a name without the owner would let one daemon's job destroy the
    /// other's VM. The work directory has the same name.
    pub fn domain_name(&self, owner: &str, generation: i64) -> String {
        format!("vrun-{owner}-{}-{}-g{}", self.project, self.viewer, generation)
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.project, self.viewer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["p1", "CodeDX", "a", "proj_2-x", &"x".repeat(64)] {
            assert_eq!(validate_name("project", n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_dangerous_names() {
        let long = "x".repeat(65);
        let cases =
            ["", "../etc", "a/b", "a b", "a;rm -rf /", "a\nb", "-x", "_x", "a.b", "$(id)", "a`b`", "é", "a\0b", &long];
        for n in cases {
            assert!(validate_name("project", n).is_err(), "{n:?} accepted");
        }
    }

    #[test]
    fn pair_derives_ids() {
        let p = Pair::new("p1", "CodeDX").unwrap();
        assert_eq!(p.execrunid(), "vrun.p1.CodeDX");
        assert_eq!(p.domain_name("0123456789ab", 7), "vrun-0123456789ab-p1-CodeDX-g7");
        assert!(is_monitor_id("0123456789ab"));
        for bad in ["", "0123456789a", "0123456789abc", "0123456789AB", "../../etc/x"] {
            assert!(!is_monitor_id(bad), "{bad}");
        }
        for good in ["n1", "hv-03.example", "node_7"] {
            assert!(is_node_name(good), "{good}");
        }
        for bad in ["", "-n1", ".n1", "n 1", "n1/..", "n'1", &"n".repeat(65)] {
            assert!(!is_node_name(bad), "{bad}");
        }
    }
}
