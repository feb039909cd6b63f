//! A throwaway Slurm cluster on this host for a test (scripts/lib/slurm.sh: its own munged,
//! slurmctld and one slurmd per node on 127.0.0.1), started by the test and stopped, by
//! exactly its PIDs, when the handle is dropped. Client commands need `SLURM_CONF`
//! ([`Cluster::conf`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/slurm.sh");

/// The cluster; its jobs cancelled and its daemons stopped when dropped.
pub struct Cluster {
    dir: PathBuf,
    /// Nodes lost and not restored: restored before the end, so their slurmd kills the job
    /// steps it lost (nothing else can reach them).
    lost: std::sync::Mutex<Vec<String>>,
}

impl Cluster {
    /// `nodes` nodes (n1..nN) of `cpus` CPUs and `mem_mib` MiB each, in partition `viewers`.
    /// `slurmd_timeout` is how long a silent slurmd takes to be declared down.
    pub fn start(dir: &Path, nodes: u32, cpus: u32, mem_mib: u32, slurmd_timeout: Duration) -> Cluster {
        let ok = Command::new("bash")
            .arg("-c")
            .arg(format!("source {SCRIPT} && vrun_slurm_start {} {nodes} {cpus} {mem_mib}", dir.display()))
            .env("VRUN_SLURMD_TIMEOUT", slurmd_timeout.as_secs().max(1).to_string())
            .status()
            .expect("run scripts/lib/slurm.sh")
            .success();
        let c = Cluster { dir: dir.to_path_buf(), lost: Default::default() };
        assert!(ok, "the test cluster did not start");
        c
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    /// Runs a Slurm client command against this cluster; stdout and stderr together.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(args[0]).args(&args[1..]).env("SLURM_CONF", self.conf()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `kill -9` of one node's slurmd: a hypervisor lost (its jobs' processes live on).
    pub fn lose_node(&self, node: &str) {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).push(node.to_string());
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("source {SCRIPT} && vrun_slurm_node_stop {} {node}", self.dir.display()))
            .status();
    }

    /// Starts a lost node's slurmd again; it kills what is left of the steps it lost.
    pub fn restore_node(&self, node: &str) {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| n != node);
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("source {SCRIPT} && vrun_slurm_node_start {} {node}", self.dir.display()))
            .status();
    }

    /// A node's state as `sinfo` says it (`idle`, `alloc`, `down*`, ...).
    pub fn node_state(&self, node: &str) -> String {
        self.run(&["sinfo", "-h", "-N", "-n", node, "-o", "%T"]).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let lost = std::mem::take(&mut *self.lost.lock().unwrap_or_else(|p| p.into_inner()));
        for node in &lost {
            self.restore_node(node);
        }
        if !lost.is_empty() {
            std::thread::sleep(Duration::from_secs(3));
        }
        // Its jobs first (a stopped slurmd leaves its jobs' slurmstepd running): asked, then
        // killed, so nothing of a test outlives it.
        self.run(&["scancel", "--partition=viewers"]);
        std::thread::sleep(Duration::from_secs(2));
        self.run(&["scancel", "--partition=viewers", "--signal=KILL", "--full"]);
        std::thread::sleep(Duration::from_secs(1));
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("source {SCRIPT} && vrun_slurm_stop {}", self.dir.display()))
            .status();
    }
}
