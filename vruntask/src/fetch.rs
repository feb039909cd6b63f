//! A job on a node that shares no filesystem with agent-monitor: the description, the
//! database to restore and the platform image check.
//!
//! The job is started with only agent-monitor's URL and its job token (in the environment,
//! never in arguments: see docs/operations.md). The token names the pair and generation
//! (`job.<project>.<viewer>.<generation>.<hmac>`), so nothing else needs passing. The database
//! comes in bounded chunks (`fetchViewerDb`) into the private work directory and is verified
//! against the SHA-256 in the description before it goes on the VM's disk.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vrun_proto::client::{AgentMonitorClient, Credentials};
use vrun_proto::job::JobSpec;
use vrun_proto::methods::{FetchViewerDb, DB_CHUNK_MAX};
use vrun_proto::Pair;

/// The pair and generation a job token speaks for (agent-monitor checks the HMAC).
pub fn token_claim(token: &str) -> Option<(Pair, i64)> {
    let mut parts = token.strip_prefix("job.")?.split('.');
    let (Some(p), Some(v), Some(g), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((Pair::new(p, v).ok()?, g.parse().ok().filter(|g| *g > 0)?))
}

/// Why a fetched job cannot run; the text is the reason reported with `failed`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the job token is malformed (expected job.<project>.<viewer>.<generation>.<mac>)")]
    BadToken,
    #[error("cannot reach agent-monitor: {0}")]
    Client(#[from] vrun_proto::client::ClientError),
    #[error("{0}")]
    Job(#[from] vrun_proto::job::JobParseError),
    #[error("cannot fetch the database to restore: {0}")]
    Db(String),
}

/// Fetches and checks the job's description.
pub async fn job(url: &str, token: &str) -> Result<JobSpec, FetchError> {
    let (pair, generation) = token_claim(token).ok_or(FetchError::BadToken)?;
    let client = AgentMonitorClient::new(url, Credentials::Bearer(token.to_string()))?;
    let json = client.fetch_job(&pair, generation).await?;
    let mut job = vrun_proto::job::parse(json.as_bytes())?;
    if job.generation != generation || job.pair().ok().as_ref() != Some(&pair) {
        return Err(FetchError::Job(vrun_proto::job::JobParseError::Invalid(
            "the description is for another job".into(),
        )));
    }
    // Where it reports is where it was fetched from, whatever the description says.
    job.agent_monitor_url = url.to_string();
    job.job_token = Some(token.to_string());
    Ok(job)
}

/// Fetches the job's database archive into `dest` (mode 0600) and verifies it.
pub async fn database(job: &JobSpec, dest: &Path) -> Result<PathBuf, FetchError> {
    let fail = |s: String| FetchError::Db(s);
    let (Some(sum), Some(size)) = (job.db_sha256.clone(), job.db_size) else {
        return Err(fail("agent-monitor could not read it".into()));
    };
    let token = job.job_token.clone().ok_or(FetchError::BadToken)?;
    let client = AgentMonitorClient::new(&job.agent_monitor_url, Credentials::Bearer(token))?;
    let pair = job.pair().map_err(|_| FetchError::BadToken)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| fail(format!("{}: {e}", dest.display())))?;
    let (mut hash, mut offset) = (Sha256::new(), 0u64);
    while offset < size {
        let req = FetchViewerDb {
            pair: pair.clone(),
            generation: job.generation,
            offset: offset as i64,
            length: DB_CHUNK_MAX,
        };
        let chunk = client.fetch_viewer_db(&req).await?;
        if chunk.size as u64 != size || chunk.data.is_empty() {
            return Err(fail(format!(
                "the archive changed while it was fetched ({} bytes, the job says {size})",
                chunk.size
            )));
        }
        hash.update(&chunk.data);
        file.write_all(&chunk.data).map_err(|e| fail(e.to_string()))?;
        offset += chunk.data.len() as u64;
    }
    file.sync_all().map_err(|e| fail(e.to_string()))?;
    let got = hex::encode(hash.finalize());
    if got != sum {
        return Err(fail(format!("its SHA-256 is {got}, the job says {sum}")));
    }
    tracing::info!(bytes = size, "database to restore fetched and verified");
    Ok(dest.to_path_buf())
}

/// The platform to boot: the node's copy in `image_dir` when there is one, else the path in
/// the job (one host); either way checked against the job's checksum when it has one.
pub fn platform(job: &JobSpec, image_dir: Option<&Path>) -> Result<PathBuf, String> {
    let path = match (image_dir, &job.platform_name) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => PathBuf::from(&job.platform),
    };
    if !path.exists() {
        return Err(format!("this node has no platform image {}", path.display()));
    }
    if let Some(want) = &job.platform_sha256 {
        let have = vrun_proto::platform::checksum(&path)
            .map_err(|e| format!("cannot read platform image {}: {e}", path.display()))?;
        if &have != want {
            return Err(format!(
                "platform image {} on this node does not match the job's (checksum {have}, the job says {want})",
                path.display()
            ));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_names_pair_and_generation() {
        let (pair, g) = super::token_claim("job.p1.CodeDX.7.abcd").unwrap();
        assert_eq!((pair.project(), pair.viewer(), g), ("p1", "CodeDX", 7));
        assert!(super::token_claim("job.p1.CodeDX.0.abcd").is_none());
        assert!(super::token_claim("job.p/1.CodeDX.7.abcd").is_none());
        assert!(super::token_claim("launcher-secret").is_none());
    }
}
