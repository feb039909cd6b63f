//! The Slurm launcher: each viewer job is one batch job on a node of a partition, so viewers
//! spread over many hypervisors and wait in Slurm's queue when all are full.
//!
//! - **Start**: `sbatch --parsable --no-requeue` reading the script on stdin (nothing of it is
//!   a file on this host). The script holds no secret: it exports the job's non-secret
//!   `VRUN_*` settings and execs `vruntask run --from-agent-monitor <url>`; the job token
//!   travels in sbatch's own environment, which is built from nothing ([`sbatch_env`]: the
//!   token, `PATH`, the user's identity, Slurm's own variables; nothing else of
//!   agent-monitor's environment leaks) and exported whole (`--export=ALL`), and Slurm shows
//!   it in neither `scontrol show job` nor the arguments of any process. Not
//!   `--export=VRUN_JOB_TOKEN`: any export list (or `NONE`) makes slurmd load the user's
//!   login environment (`su - <user> -c env`) before it launches the job, which delayed
//!   every job's start by 1.2–3.3 s on the test cluster. `--no-requeue` because Slurm
//!   requeues a job whose node failed by default, and vrun decides relaunches itself.
//! - **Names**: `vrun.<project>.<viewer>.g<generation>`, with the comment
//!   `vrun <agent-monitor id>` so that two agent-monitors on one cluster never read or
//!   cancel each other's jobs.
//! - **Liveness**: one `squeue --me --states=all` per sweep for all jobs
//!   ([`Launcher::probe_all`]), in a plain `--format` of the six fields we read ([`FORMAT`]).
//!   It also lists jobs that ended within `MinJobAge`, with how they ended (`NODE_FAIL`,
//!   `TIMEOUT`, `CANCELLED`). A controller that does not answer says nothing: jobs are then
//!   taken to run (their leases still expire if they really died). Not `--json`: with 1,000
//!   jobs queued it printed 3.3 MB and took 0.5–1.4 s (Slurm 22.05's JSON plugin), the plain
//!   format 60 KB in ~50–100 ms (docs/performance.md).
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
        // The end of stdout (the child exiting, as a rule) wakes us at once: polling the
        // child every 10 ms added up to 10 ms to each call on the click's path.
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        if let Some(mut o) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut o, &mut s);
                let _ = out_tx.send(s);
            });
        }
        let err = child.stderr.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut o, &mut s);
                s
            })
        });
        let end = Instant::now() + self.settings.timeout;
        let stdout = out_rx.recv_timeout(end.saturating_duration_since(Instant::now())).ok();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) if stdout.is_some() => break s,
                Ok(None) if stdout.is_some() && Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout { command, why, secs: self.settings.timeout.as_secs() });
                }
            }
        };
        let stdout = stdout.unwrap_or_default();
        let stderr = err.and_then(|t| t.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(SlurmError::Failed { command, why, stderr: stderr.trim().to_string() });
        }
        Ok(stdout)
    }

    /// All of this agent-monitor's jobs Slurm knows, running, queued or recently ended.
    pub fn survey(&self, why: &'static str) -> Result<Vec<SlurmJob>, SlurmError> {
        let mut cmd = self.command("squeue");
        // --me: only agent-monitor's own user's jobs (filtered by slurmctld, so cheaper too),
        // and so no other user's job name or comment can be read as one of ours.
        cmd.args(["--me", "--states=all", "--noheader", "--format", FORMAT]);
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
            .arg("--export=ALL")
            .env_clear()
            .envs(sbatch_env(std::env::vars()))
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

/// What of agent-monitor's environment `sbatch` (and so the job) gets, besides the token:
/// where programs are, who the user is, and Slurm's own variables (`SLURM_CONF`, `SBATCH_*`
/// settings; Slurm passes `SLURM_*` to jobs whatever `--export` says). Nothing else: no
/// `VRUN_*` (the script sets those it means to), no credentials, no `AGENT_MONITOR_*`.
pub fn sbatch_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    const KEEP: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ"];
    vars.filter(|(k, _)| KEEP.contains(&k.as_str()) || k.starts_with("SLURM_") || k.starts_with("SBATCH_"))
        .filter(|(k, _)| k != TOKEN_ENV)
        .collect()
}

/// squeue's `--format` for [`parse_squeue`]: job id, name, state (long form: `PENDING`,
/// `NODE_FAIL`), reason (`Resources`, `None`), batch host, comment. The comment comes last,
/// so a `|` in it cannot shift the other fields; names of ours never hold one.
pub const FORMAT: &str = "%i|%j|%T|%r|%B|%k";

/// Our jobs (comment `comment`) in the output of `squeue --noheader --format` [`FORMAT`],
/// oldest (lowest job id) first. squeue prints an unset field as `(null)` and a pending job's
/// batch host as `n/a`: both read as empty.
pub fn parse_squeue(out: &str, comment: &str) -> Result<Vec<SlurmJob>, String> {
    let field = |s: &str| if s == "(null)" || s == "n/a" { String::new() } else { s.to_string() };
    let mut jobs = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(6, '|').collect();
        let [id, name, state, reason, host, their_comment] = f[..] else {
            return Err(format!("not {} fields: {line:?}", FORMAT.split('|').count()));
        };
        if their_comment != comment {
            continue;
        }
        let id = id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("job id {id:?} is not a number: {line:?}"));
        }
        jobs.push(SlurmJob {
            id: id.to_string(),
            name: field(name.trim()),
            state: field(state.trim()),
            reason: field(reason.trim()),
            node: field(host.trim()),
        });
    }
    // squeue sorts by state and priority; the newest record of a name is the highest id.
    jobs.sort_by_key(|j| j.id.parse::<u64>().unwrap_or(0));
    Ok(jobs)
}

/// Each generation's probe from one survey (oldest job first): the newest record of the
/// generation counts (a requeued job would have several). One pass over the jobs, not one per
/// generation: with 1,000 jobs the search per generation cost more than squeue itself.
pub fn probes_of(jobs: &[SlurmJob], generations: &[i64]) -> Vec<JobProbe> {
    let newest: std::collections::HashMap<i64, &SlurmJob> =
        jobs.iter().filter_map(|j| Some((generation_of(&j.name)?, j))).collect();
    generations.iter().map(|g| newest.get(g).map_or(JobProbe::NotRunning, |j| probe_of(j))).collect()
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
        probes_of(&jobs, generations)
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
    fn squeue_output_maps_to_probes() {
        // As squeue prints it: sorted by state and priority, not by id.
        let out = "\
8|vrun.p.v.g4|RUNNING|None|n2|vrun aa
10|vrun.p.v.g3|RUNNING|None|n1|vrun bb
7|vrun.p.v.g3|PENDING|Resources|n/a|vrun aa
9|vrun.p.v.g5|NODE_FAIL|None|n1|vrun aa
11|sbatch|COMPLETED|None|n3|(null)
12|vrun.p.v.g6|PENDING|JobHeldUser|n/a|vrun aa|with a bar
";
        let jobs = parse_squeue(out, "vrun aa").unwrap();
        assert_eq!(jobs.len(), 3, "another agent-monitor's job, a stranger's and a longer comment are not ours");
        assert_eq!(jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["7", "8", "9"], "oldest first");
        assert_eq!(jobs[0].name, "vrun.p.v.g3");
        assert_eq!(probe_of(&jobs[0]), JobProbe::Queued { reason: "Resources".into() });
        assert_eq!(probe_of(&jobs[1]), JobProbe::Running { node: Some("n2".into()) });
        assert_eq!(probe_of(&jobs[2]), JobProbe::Ended { reason: "Slurm job 9 NODE_FAIL on n1".into() });
        assert_eq!(generation_of("vrun.p.v.g12"), Some(12));
        let requeued = parse_squeue("21|vrun.p.v.g3|PENDING|BeginTime|n/a|vrun aa\n", "vrun aa").unwrap();
        let all: Vec<SlurmJob> = jobs.iter().cloned().chain(requeued).collect();
        assert_eq!(
            probes_of(&all, &[3, 4, 99]),
            [
                JobProbe::Queued { reason: "BeginTime".into() },
                JobProbe::Running { node: Some("n2".into()) },
                JobProbe::NotRunning
            ],
            "the newest record of a generation counts"
        );
        assert_eq!(parse_squeue("", "vrun aa").unwrap(), []);
        assert!(parse_squeue("squeue: error: Invalid user\n", "vrun aa").is_err(), "not silently empty");
        assert!(parse_squeue("x1|vrun.p.v.g3|RUNNING|None|n1|vrun aa\n", "vrun aa").is_err());
        // A comment with our text and more is not ours; a bar in it cannot shift fields.
        let bar = parse_squeue("13|vrun.p.v.g7|RUNNING|None|n1|vrun a|a\n", "vrun a|a").unwrap();
        assert_eq!(bar[0].node, "n1");
    }

    #[test]
    fn sbatch_gets_no_more_of_our_environment_than_it_needs() {
        let ours = [
            ("PATH", "/usr/bin"),
            ("SLURM_CONF", "/etc/slurm/slurm.conf"),
            ("SBATCH_PARTITION", "viewers"),
            ("AGENT_MONITOR_SECRET_FILE", "/secret"),
            ("VRUN_WORK_ROOT", "/w"),
            ("VRUN_JOB_TOKEN", "job.p.v.3.stale"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("HOME", "/root"),
        ];
        let env = sbatch_env(ours.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "SLURM_CONF", "SBATCH_PARTITION", "HOME"]);
    }

    #[test]
    fn the_format_is_the_one_parsed() {
        assert_eq!(FORMAT.split('|').count(), 6);
        assert!(FORMAT.ends_with("%k"), "the comment, which may hold anything, comes last");
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
