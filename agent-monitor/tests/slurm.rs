//! The Slurm launcher against a real cluster on this host (scripts/lib/slurm.sh: its own
//! munged, slurmctld and three one-CPU slurmd on 127.0.0.1), started and stopped by the
//! test. The job is a stand-in that holds its node (no VM): this is about what agent-monitor
//! asks of Slurm and makes of its answers. Runs in the `vm` test group (the machine lock).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{eventually, pair, runtime};
use vrun_proto::methods::{InstanceRecord, LaunchViewer};
use vrun_test_support::slurm::Cluster;
use vrun_test_support::Spawn;

#[test]
fn viewers_spread_over_nodes_queue_when_full_and_end_when_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = Cluster::start(&tmp.path().join("slurm"), 3, 1, 1024, Duration::from_secs(30));
    // Stands in for vruntask: notes that the token arrived (not what it is), holds the node.
    let job = tmp.path().join("fake-vruntask");
    let marks = tmp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    std::fs::write(
        &job,
        format!(
            "#!/bin/sh\n[ -n \"$VRUN_JOB_TOKEN\" ] && touch {m}/token.$SLURM_JOB_ID\nenv | grep -c '^AGENT_MONITOR_' > {m}/leaked.$SLURM_JOB_ID\nexec sleep 600\n",
            m = marks.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&job, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = format!("{}/%x.%j.log", tmp.path().display());
    let d = Spawn::new(&tmp.path().join("state"), &job)
        .args(["--launcher", "slurm", "--slurm-output", &output, "--sweep-secs", "1"])
        .args(["--lease-secs", "600", "--start-grace-secs", "600", "--libvirt-uri", "none"])
        .env("SLURM_CONF", cluster.conf())
        .env("AGENT_MONITOR_SECRET_PROBE", "must-not-reach-the-job")
        .start();
    let c = d.client();
    let rt = runtime();
    let pairs: Vec<_> = (1..=4).map(|i| pair(&format!("slurm{i}"), "CodeDX")).collect();
    for p in &pairs {
        let mut req = LaunchViewer::new(p.clone());
        req.user = Some("alice".into());
        rt.block_on(c.launch_viewer(&req)).unwrap();
    }
    let status = |p: &vrun_proto::Pair| -> InstanceRecord { rt.block_on(c.viewer_status(p)).unwrap() };
    let running = || pairs.iter().map(status).filter(|r| !r.node.is_empty()).collect::<Vec<_>>();
    eventually("three viewers run", Duration::from_secs(60), || running().len() == 3);
    let mut nodes: Vec<String> = running().into_iter().map(|r| r.node).collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "one viewer per node");
    let queued: Vec<_> = pairs.iter().map(status).filter(|r| r.node.is_empty()).collect();
    assert_eq!(queued.len(), 1);
    eventually("the fourth shows Slurm's reason", Duration::from_secs(30), || {
        let r = status(&pair(&queued[0].project, "CodeDX"));
        r.state == "launching" && r.reason.starts_with("waiting for a free hypervisor: ")
    });

    for r in running() {
        assert!(!r.job_id.is_empty(), "{r:?}");
        let shown = cluster.run(&["scontrol", "show", "job", &r.job_id]);
        assert!(shown.contains(&format!("JobName=vrun.{}.CodeDX.g{}", r.project, r.generation)), "{shown}");
        assert!(!shown.contains("job.slurm"), "no token in scontrol show job:\n{shown}");
        // RUNNING in Slurm comes a moment before the script has run.
        let leaked_file = marks.join(format!("leaked.{}", r.job_id));
        eventually("the job script ran", Duration::from_secs(20), || leaked_file.exists());
        std::thread::sleep(Duration::from_millis(200));
        assert!(marks.join(format!("token.{}", r.job_id)).exists(), "the job got its token");
        let leaked = std::fs::read_to_string(marks.join(format!("leaked.{}", r.job_id))).unwrap();
        assert_eq!(leaked.trim(), "0", "nothing of agent-monitor's environment reaches the job");
        let script = cluster.run(&["scontrol", "write", "batch_script", &r.job_id, "-"]);
        assert!(script.contains("--from-agent-monitor") && !script.contains("job.slurm"), "{script}");
    }

    // An admin cancels one: the instance ends with Slurm's word for it, and the queued one runs.
    let victim = running().remove(0);
    cluster.run(&["scancel", &victim.job_id]);
    eventually("the cancelled instance ends", Duration::from_secs(60), || {
        let r = status(&pair(&victim.project, "CodeDX"));
        r.state == "failed" && r.reason.contains("CANCELLED")
    });
    eventually("the queued viewer gets the freed node", Duration::from_secs(60), || {
        !status(&pair(&queued[0].project, "CodeDX")).node.is_empty()
    });
    drop(d);
}
