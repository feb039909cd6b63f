//! The sweep's Slurm query, timed, for `scripts/bench --only slurm`: builds the Slurm
//! launcher from its settings as agent-monitor does (`launcher = slurm`, defaults otherwise)
//! and calls [`Launcher::probe_all`] for generations 1..=N, CALLS times. `SLURM_CONF` names
//! the cluster; the jobs must carry the comment `vrun <MONITOR_ID>` and the names
//! `vrun.<project>.<viewer>.g<generation>`.
//!
//! `slurm_probe MONITOR_ID N [CALLS]` prints
//! `calls=<n> median_ms=<m> min_ms=<m> max_ms=<m> running=<r> queued=<q> ended=<e> missing=<m>`
//! (the counts from the last call).

use std::time::{Duration, Instant};

use agent_monitor::launcher::slurm::{SlurmLauncher, SlurmSettings};
use agent_monitor::launcher::{JobProbe, Launcher};

fn main() {
    let mut args = std::env::args().skip(1);
    let id = args.next().expect("usage: slurm_probe MONITOR_ID N [CALLS]");
    let n: i64 = args.next().and_then(|s| s.parse().ok()).expect("N: the number of generations");
    let calls: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10).max(1);
    let settings = SlurmSettings {
        partition: None,
        memory_overhead_mib: 256,
        time_limit: Duration::from_secs(3600),
        output: "/tmp/%x.%j.log".into(),
        job_command: "vruntask".into(),
        timeout: Duration::from_secs(10),
        bin_dir: None,
    };
    let launcher = SlurmLauncher::new(settings, &id);
    let generations: Vec<i64> = (1..=n).collect();
    let mut times = Vec::with_capacity(calls);
    let mut last = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        last = launcher.probe_all(&generations);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let count = |f: fn(&JobProbe) -> bool| last.iter().filter(|p| f(p)).count();
    let running = count(|p| matches!(p, JobProbe::Running { .. }));
    let queued = count(|p| matches!(p, JobProbe::Queued { .. }));
    let ended = count(|p| matches!(p, JobProbe::Ended { .. }));
    let missing = count(|p| matches!(p, JobProbe::NotRunning));
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "calls={calls} median_ms={:.1} min_ms={:.1} max_ms={:.1} running={running} queued={queued} ended={ended} missing={missing}",
        sorted[calls / 2],
        sorted[0],
        sorted[calls - 1]
    );
}
