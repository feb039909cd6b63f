//! The job description: what agent-monitor hands to `vruntask run <job file>`.
//!
//! It carries what SWAMP's BOG carried for a viewer run, plus the fencing `generation` and
//! where to report. It is written as JSON into the state directory (mode 0600: it holds the
//! viewer's API key) before the job starts, and never changes afterwards.

use serde::{Deserialize, Serialize};

use crate::names::Pair;

/// `intent` of every viewer run, as in SWAMP.
pub const INTENT_VRUN: &str = "VRUN";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// `vrun.<project>.<viewer>`.
    pub execrunid: String,
    /// Always `VRUN`.
    pub intent: String,
    pub project: String,
    pub viewer: String,
    /// The fencing token: every report of this job carries it.
    pub generation: i64,
    /// The launching agent-monitor's id: part of the domain's name, metadata and work
    /// directory, so that daemons sharing a hypervisor never touch each other's VMs.
    pub monitor_id: String,
    pub viewer_uuid: Option<String>,
    pub resultsfolder: Option<String>,
    /// The viewer database archive to restore: the newest one stored for the pair, if any.
    pub db_path: Option<String>,
    /// Who asked for the launch; the viewer's first authorised user.
    pub user: Option<String>,
    /// Users allowed to see the viewer's pages.
    pub users: Vec<String>,
    /// 256-bit hex secret, becomes the viewer's API key.
    pub apikey: String,
    /// `proxy-<uuid>`: the viewer's context path.
    pub urluuid: String,
    /// The VM image: a directory holding `vmlinuz` + `initrd.img`, or a disk image file.
    pub platform: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// XML-RPC endpoint of agent-monitor, e.g. `http://127.0.0.1:8085/RPC2`.
    pub agent_monitor_url: String,
    /// Credential this job presents to agent-monitor (bound to its pair and generation).
    pub job_token: Option<String>,
    /// How often the job must heartbeat; the lease is a few of these.
    pub heartbeat_secs: u64,
}

impl JobSpec {
    /// The validated pair this job is for.
    pub fn pair(&self) -> Result<Pair, crate::names::NameError> {
        Pair::new(&self.project, &self.viewer)
    }

    /// The libvirt domain (and work directory) name of this job's VM.
    pub fn domain_name(&self) -> Result<String, crate::names::NameError> {
        Ok(self.pair()?.domain_name(&self.monitor_id, self.generation))
    }

    /// Checks what serde cannot: names, ids and secrets have the expected shape.
    pub fn validate(&self) -> Result<Pair, String> {
        let pair = self.pair().map_err(|e| e.to_string())?;
        if self.execrunid != pair.execrunid() {
            return Err(format!("execrunid must be {}", pair.execrunid()));
        }
        if self.intent != INTENT_VRUN {
            return Err(format!("intent must be {INTENT_VRUN}"));
        }
        if !crate::names::is_monitor_id(&self.monitor_id) {
            return Err("monitor_id must be 12 lowercase hex digits".into());
        }
        if self.generation <= 0 {
            return Err("generation must be positive".into());
        }
        if self.apikey.len() != 64 || !self.apikey.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("apikey must be 64 hex digits".into());
        }
        if !is_urluuid(&self.urluuid) {
            return Err("urluuid must be proxy-<uuid>".into());
        }
        for u in &self.users {
            crate::names::validate_name("user", u).map_err(|e| e.to_string())?;
        }
        if self.memory_mib < 64 || self.vcpus == 0 || self.vcpus > 64 {
            return Err("memory_mib must be at least 64 and vcpus 1 to 64".into());
        }
        Ok(pair)
    }
}

/// `run.json` on the VM's configuration disk: what the viewer inside needs, as data (the
/// viewer binary reads it; no shell ever does). vruntask writes it, the viewer validates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJson {
    pub project: String,
    pub viewer: String,
    pub users: Vec<String>,
    pub apikey: String,
    pub urluuid: String,
    pub port: u16,
}

/// `proxy-` followed by a lowercase hyphenated UUID.
pub fn is_urluuid(s: &str) -> bool {
    let Some(u) = s.strip_prefix("proxy-") else { return false };
    u.len() == 36
        && u.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            execrunid: "vrun.p.v".into(),
            intent: "VRUN".into(),
            project: "p".into(),
            viewer: "v".into(),
            generation: 3,
            monitor_id: "00aa11bb22cc".into(),
            viewer_uuid: None,
            resultsfolder: None,
            db_path: None,
            user: Some("alice".into()),
            users: vec!["alice".into()],
            apikey: "ab".repeat(32),
            urluuid: "proxy-0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            platform: "/img".into(),
            memory_mib: 512,
            vcpus: 1,
            agent_monitor_url: "http://127.0.0.1:8085/RPC2".into(),
            job_token: None,
            heartbeat_secs: 5,
        }
    }

    #[test]
    fn valid_spec_round_trips() {
        let s = spec();
        assert!(s.validate().is_ok());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), s);
    }

    #[test]
    fn refuses_mismatched_or_unknown() {
        let mut s = spec();
        s.execrunid = "vrun.other.v".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.urluuid = "proxy-../../etc".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.monitor_id = "../../x".into();
        assert!(s.validate().is_err());
        let json = serde_json::to_string(&spec()).unwrap().replacen('{', "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<JobSpec>(&json).is_err());
    }
}
