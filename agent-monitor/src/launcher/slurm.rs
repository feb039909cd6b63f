//! The Slurm launcher: each viewer job is one batch job on a node of a partition, so viewers
//! spread over many hypervisors and wait in Slurm's queue when all are full.
//!
//! - **Start**: `sbatch --parsable --no-requeue` reading the script on stdin (nothing of it is
//!   a file on this host). The script holds no secret: it exports the job's non-secret
//!   `VRUN_*` settings and execs `vruntask run --from-agent-monitor <url>`; the job token
//!   travels in sbatch's own environment, exported to the job alone (`--export=VRUN_JOB_TOKEN`,
//!   so nothing else of agent-monitor's environment leaks), and Slurm shows it in neither
//!   `scontrol show job` nor the arguments of any process. `--no-requeue` because Slurm
//!   requeues a job whose node failed by default, and vrun decides relaunches itself.
//! - **Names**: `vrun.<project>.<viewer>.g<generation>`, with the comment
//!   `vrun <agent-monitor id>` so that two agent-monitors on one cluster never read or
//!   cancel each other's jobs.
//! - **Liveness**: one `squeue --json` per sweep for all jobs ([`Launcher::probe_all`]). It also
//!   lists jobs that ended within `MinJobAge`, with how they ended (`NODE_FAIL`, `TIMEOUT`,
//!   `CANCELLED`). A controller that does not answer says nothing: jobs are then taken to
//!   run (their leases still expire if they really died).
//! - **Cancel**: `scancel` (SIGTERM to vruntask, which saves the database), then after the
//!   grace `scancel --signal=KILL --full`. Slurm's own `KillWait` must exceed vruntask's
//!   teardown (see docs/operations.md).
//!
//! Every call has a timeout ([`SlurmSettings::timeout`]) and is logged with its reason.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vrun_proto::job::JobSpec;

use super::{JobProbe, LaunchError, Launcher, TOKEN_ENV};

/// The Slurm launcher's settings (agent-monitor's `slurm_*` settings).
#[derive(Debug, Clone)]
pub struct SlurmSettings {
    /// Partition of the viewer hypervisors; `None`: the cluster's default.
    pub partition: Option<String>,
    /// Memory a job asks for beyond the VM's own (QEMU, vruntask).
    pub memory_overhead_mib: u32,
    /// Time limit of a job: the viewer's max_lifetime plus its teardown.
    pub time_limit: Duration,
    /// Where the job's output goes on its node (Slurm's `--output` pattern).
    pub output: String,
    /// The vruntask executable on the nodes.
    pub job_command: PathBuf,
    /// Deadline of each sbatch/squeue/scancel call.
    pub timeout: Duration,
    /// Where sbatch/squeue/scancel are (`None`: PATH).
    pub bin_dir: Option<PathBuf>,
}

pub struct SlurmLauncher {
    settings: SlurmSettings,
    comment: String,
    /// Non-secret `VRUN_*` settings for the jobs, from agent-monitor's environment.
    job_env: Vec<(String, String)>,
}

/// A failed Slurm call.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{command} ({why}) could not run: {source}")]
    Spawn { command: String, why: &'static str, source: std::io::Error },
    #[error("{command} ({why}) did not answer within {secs} s")]
    Timeout { command: String, why: &'static str, secs: u64 },
    #[error("{command} ({why}) failed: {stderr}")]
    Failed { command: String, why: &'static str, stderr: String },
    #[error("{command} ({why}) answered something unexpected: {detail}")]
    BadOutput { command: String, why: &'static str, detail: String },
}

/// One of our jobs as squeue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: String,
    pub node: String,
}

/// The job's name for generation `g` of `spec`'s pair.
pub fn job_name(spec: &JobSpec) -> String {
    format!("vrun.{}.{}.g{}", spec.project, spec.viewer, spec.generation)
}

fn generation_of(name: &str) -> Option<i64> {
    name.strip_prefix("vrun.")?.rsplit_once(".g")?.1.parse().ok()
}

/// Single-quoted for sh: nothing inside is interpreted.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SlurmLauncher {
    pub fn new(settings: SlurmSettings, monitor_id: &str) -> SlurmLauncher {
        let job_env = std::env::vars()
            .filter(|(k, _)| k.starts_with("VRUN_") && k != TOKEN_ENV && k != super::LOCK_FD_ENV)
            .collect();
        SlurmLauncher { settings, comment: format!("vrun {monitor_id}"), job_env }
    }

    fn command(&self, name: &str) -> Command {
        let path = match &self.settings.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        };
        let mut c = Command::new(path);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs `cmd` to its end or its deadline (then kills it), feeding it `input`.
    fn run(&self, mut cmd: Command, why: &'static str, input: Option<&[u8]>) -> Result<String, SlurmError> {
        let command = format!("{:?}", cmd.get_program());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|source| SlurmError::Spawn { command: command.clone(), why, source })?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(bytes);
        }
        // Read the pipes off this thread: a full pipe must not hold the child (and us) up.
        let out = child.stdout.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut o, &mut s);
                s
            })
        });
        let err = child.stderr.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut o, &mut s);
                s
            })
        });
        let end = Instant::now() + self.settings.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout { command, why, secs: self.settings.timeout.as_secs() });
                }
            }
        };
        let stdout = out.and_then(|t| t.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|t| t.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(SlurmError::Failed { command, why, stderr: stderr.trim().to_string() });
        }
        Ok(stdout)
    }

    /// All of this agent-monitor's jobs Slurm knows, running, queued or recently ended.
    pub fn survey(&self, why: &'static str) -> Result<Vec<SlurmJob>, SlurmError> {
        let mut cmd = self.command("squeue");
        cmd.args(["--json", "--states=all"]);
        let out = self.run(cmd, why, None)?;
        parse_squeue(&out, &self.comment).map_err(|detail| SlurmError::BadOutput {
            command: "squeue".into(),
            why,
            detail,
        })
    }

    fn script(&self, spec: &JobSpec) -> String {
        let mut s =
            format!("#!/bin/sh\n# vrun viewer job {}: written by agent-monitor; holds no secret.\n", job_name(spec));
        s.push_str("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
        for (k, v) in &self.job_env {
            s.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        s.push_str(&format!(
            "exec {} run --from-agent-monitor {}\n",
            sh_quote(&self.settings.job_command.to_string_lossy()),
            sh_quote(&spec.agent_monitor_url)
        ));
        s
    }

    fn submit(&self, spec: &JobSpec) -> Result<String, SlurmError> {
        let token = spec.job_token.clone().unwrap_or_default();
        let minutes = self.settings.time_limit.as_secs().div_ceil(60).max(1);
        let mut cmd = self.command("sbatch");
        cmd.args(["--parsable", "--no-requeue", "--chdir=/"])
            .arg(format!("--job-name={}", job_name(spec)))
            .arg(format!("--comment={}", self.comment))
            .arg(format!("--cpus-per-task={}", spec.vcpus))
            .arg(format!("--mem={}M", spec.memory_mib + self.settings.memory_overhead_mib))
            .arg(format!("--time={minutes}"))
            .arg(format!("--output={}", self.settings.output))
            .arg(format!("--export={TOKEN_ENV}"))
            .env(TOKEN_ENV, token);
        if let Some(p) = &self.settings.partition {
            cmd.arg(format!("--partition={p}"));
        }
        let out = self.run(cmd, "submit a viewer job", Some(self.script(spec).as_bytes()))?;
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SlurmError::BadOutput { command: "sbatch".into(), why: "submit a viewer job", detail: out });
        }
        Ok(id)
    }

    fn scancel(&self, id: &str, kill: bool, why: &'static str) {
        let mut cmd = self.command("scancel");
        if kill {
            cmd.args(["--signal=KILL", "--full"]);
        }
        cmd.arg(id);
        if let Err(e) = self.run(cmd, why, None) {
            tracing::warn!(job_id = id, error = %e, "scancel failed");
        }
    }
}

/// Our jobs in `squeue --json` output (openapi v0.0.38; `job_state` a string there, a list
/// in later versions).
pub fn parse_squeue(json: &str, comment: &str) -> Result<Vec<SlurmJob>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let jobs = v["jobs"].as_array().ok_or("no jobs array")?;
    let text = |j: &serde_json::Value, k: &str| match &j[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.first().and_then(|s| s.as_str()).unwrap_or("").to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    Ok(jobs
        .iter()
        .filter(|j| j["comment"].as_str() == Some(comment))
        .map(|j| SlurmJob {
            id: text(j, "job_id"),
            name: text(j, "name"),
            state: text(j, "job_state"),
            reason: text(j, "state_reason"),
            node: text(j, "batch_host"),
        })
        .collect())
}

/// What a Slurm job state means for its instance.
pub fn probe_of(job: &SlurmJob) -> JobProbe {
    match job.state.as_str() {
        "PENDING" => JobProbe::Queued { reason: job.reason.clone() },
        "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            JobProbe::Running { node: (!job.node.is_empty()).then(|| job.node.clone()) }
        }
        state => {
            let why = if job.reason.is_empty() || job.reason == "None" {
                String::new()
            } else {
                format!(" ({})", job.reason)
            };
            let on = if job.node.is_empty() { String::new() } else { format!(" on {}", job.node) };
            JobProbe::Ended { reason: format!("Slurm job {} {state}{on}{why}", job.id) }
        }
    }
}

impl Launcher for SlurmLauncher {
    fn start(&self, spec: &JobSpec, still_current: &dyn Fn() -> bool) -> Result<Option<String>, LaunchError> {
        let name = job_name(spec);
        let spawn = |e: SlurmError| LaunchError::Spawn {
            command: "sbatch".into(),
            source: std::io::Error::other(e.to_string()),
        };
        // A restart that finds the instance unstarted may race a submission that did happen:
        // never submit a generation Slurm already has.
        let known = self.survey("check the job is not already submitted").map_err(spawn)?;
        if let Some(j) = known.iter().find(|j| j.name == name) {
            tracing::info!(generation = spec.generation, job_id = %j.id, "Slurm already has this job; not submitting another");
            return Ok(Some(j.id.clone()));
        }
        if !still_current() {
            tracing::info!(generation = spec.generation, "generation ended before its submission; not submitting");
            return Ok(None);
        }
        let id = self.submit(spec).map_err(spawn)?;
        tracing::info!(generation = spec.generation, job_id = %id, name, "viewer job submitted to Slurm");
        Ok(Some(id))
    }

    fn probe(&self, generation: i64) -> JobProbe {
        self.probe_all(&[generation]).pop().unwrap_or(JobProbe::NotRunning)
    }

    fn probe_all(&self, generations: &[i64]) -> Vec<JobProbe> {
        let jobs = match self.survey("liveness of the viewer jobs") {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "Slurm did not answer; taking the jobs to run");
                return generations.iter().map(|_| JobProbe::RUNNING).collect();
            }
        };
        generations
            .iter()
            .map(|g| {
                // The newest record of the generation (a requeued job would have several).
                jobs.iter()
                    .rev()
                    .find(|j| generation_of(&j.name) == Some(*g))
                    .map(probe_of)
                    .unwrap_or(JobProbe::NotRunning)
            })
            .collect()
    }

    fn cancel(&self, generation: i64, grace: Duration) {
        let Ok(jobs) = self.survey("find the job to cancel") else { return };
        let ids: Vec<String> = jobs
            .iter()
            .filter(|j| generation_of(&j.name) == Some(generation) && !matches!(probe_of(j), JobProbe::Ended { .. }))
            .map(|j| j.id.clone())
            .collect();
        for id in &ids {
            tracing::info!(generation, job_id = %id, "cancelling Slurm job");
            self.scancel(id, false, "cancel a viewer job");
        }
        let end = Instant::now() + grace;
        while !ids.is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            if matches!(self.probe(generation), JobProbe::Ended { .. } | JobProbe::NotRunning) {
                return;
            }
        }
        for id in &ids {
            self.scancel(id, true, "kill a viewer job that outlived its grace");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_json_maps_to_probes() {
        let json = r#"{"jobs":[
            {"job_id":7,"name":"vrun.p.v.g3","job_state":"PENDING","state_reason":"Resources","batch_host":"","comment":"vrun aa"},
            {"job_id":8,"name":"vrun.p.v.g4","job_state":"RUNNING","state_reason":"None","batch_host":"n2","comment":"vrun aa"},
            {"job_id":9,"name":"vrun.p.v.g5","job_state":["NODE_FAIL"],"state_reason":"None","batch_host":"n1","comment":"vrun aa"},
            {"job_id":10,"name":"vrun.p.v.g3","job_state":"RUNNING","state_reason":"None","batch_host":"n1","comment":"vrun bb"}]}"#;
        let jobs = parse_squeue(json, "vrun aa").unwrap();
        assert_eq!(jobs.len(), 3, "another agent-monitor's job is not ours");
        assert_eq!(probe_of(&jobs[0]), JobProbe::Queued { reason: "Resources".into() });
        assert_eq!(probe_of(&jobs[1]), JobProbe::Running { node: Some("n2".into()) });
        assert_eq!(probe_of(&jobs[2]), JobProbe::Ended { reason: "Slurm job 9 NODE_FAIL on n1".into() });
        assert_eq!(generation_of("vrun.p.v.g12"), Some(12));
    }

    #[test]
    fn the_script_holds_no_secret_and_quotes_everything() {
        let settings = SlurmSettings {
            partition: None,
            memory_overhead_mib: 256,
            time_limit: Duration::from_secs(60),
            output: "/tmp/%x.log".into(),
            job_command: "/opt/vrun/vruntask".into(),
            timeout: Duration::from_secs(5),
            bin_dir: None,
        };
        let mut l = SlurmLauncher::new(settings, "aa");
        l.job_env = vec![("VRUN_WORK_ROOT".into(), "/w'; reboot; '".into())];
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "version": 2, "execrunid": "vrun.p.v", "intent": "VRUN", "project": "p", "viewer": "v", "generation": 3,
            "monitor_id": "00aa11bb22cc", "viewer_uuid": null, "resultsfolder": null, "db_path": null, "user": null,
            "users": [], "apikey": "ab".repeat(32), "urluuid": "proxy-0f8fad5b-d9cb-469f-a165-70867728950e",
            "platform": "/img", "memory_mib": 512, "vcpus": 1, "agent_monitor_url": "http://127.0.0.1:1/RPC2",
            "job_token": "job.p.v.3.secret", "heartbeat_secs": 5
        }))
        .unwrap();
        let s = l.script(&spec);
        assert!(!s.contains("job.p.v.3") && !s.contains(&spec.apikey), "{s}");
        assert!(s.contains(r"export VRUN_WORK_ROOT='/w'\''; reboot; '\'''"), "{s}");
        assert!(s.ends_with("exec '/opt/vrun/vruntask' run --from-agent-monitor 'http://127.0.0.1:1/RPC2'\n"), "{s}");
    }
}
