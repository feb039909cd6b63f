//! Reconciliation (the DomainMonitor role) and idle shutdown, against real processes and,
//! for domains, the real `qemu:///system` libvirt (domains are defined, not booted: the
//! sweep's decisions do not depend on a guest running).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, job_spec, pair, runtime, workspace_bin, Env};
use vrun_proto::methods::{LaunchViewer, SetViewerState};
use vrun_proto::ViewerState;

const FAST: &[&str] = &["--sweep-secs", "1", "--orphan-grace-secs", "1", "--salvage-timeout-secs", "5"];

fn virsh(args: &[&str]) -> (bool, String) {
    let out = Command::new("virsh").arg("-c").arg("qemu:///system").args(args).output().expect("virsh is installed");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn domain_exists(name: &str) -> bool {
    virsh(&["dominfo", name]).0
}

/// Defines (does not start) a domain; with `meta` it carries vrun's metadata for that
/// generation, and its output disk lives in `<dir>/<name>/output.img`.
fn define(dir: &std::path::Path, name: &str, meta: Option<(&vrun_proto::Pair, i64, &str)>) -> std::path::PathBuf {
    let work = dir.join(name);
    std::fs::create_dir_all(&work).unwrap();
    let out = work.join("output.img");
    std::fs::File::create(&out).unwrap().set_len(1 << 20).unwrap();
    let metadata = meta
        .map(|(p, g, owner)| {
            format!("<metadata>{}</metadata>", vrun_proto::domain::metadata_element(p, g, owner, "n1"))
        })
        .unwrap_or_default();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name>{metadata}<memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdb' bus='virtio'/></disk></devices></domain>",
        out.display()
    );
    let f = dir.join(format!("{name}.xml"));
    std::fs::write(&f, xml).unwrap();
    let (ok, _) = virsh(&["define", f.to_str().unwrap()]);
    assert!(ok, "virsh define {name}");
    out
}

struct Undefine(Vec<String>);
impl Drop for Undefine {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = virsh(&["undefine", n]);
        }
    }
}

#[test]
fn orphaned_domains_are_salvaged_and_removed_and_foreign_ones_left_alone() {
    let env = Env::new();
    let d = env.start_on("qemu:///system", FAST);
    let c = d.client();
    let me = std::fs::read_to_string(env.state_dir().join("monitor-id")).unwrap().trim().to_string();
    // Another agent-monitor on the same libvirt: its generations are numbered from 1 too.
    let other = "fedcba987654";
    assert_ne!(me, other);
    let p = pair("sweeporphan", "CodeDX");
    let (ours, old, theirs) =
        (p.domain_name(&me, 1), pair("sweepold", "CodeDX").domain_name(&me, 99), p.domain_name(other, 1));
    let work = env.tmp.path().join("work");
    let _cleanup = Undefine(vec![ours.clone(), "foreign-sweep-test".into(), old.clone(), theirs.clone()]);
    runtime().block_on(async {
        // An instance that ended while its VM was left behind (as when its job was killed).
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        assert_eq!(g, 1);
        let report = SetViewerState {
            pair: p.clone(),
            generation: g,
            state: ViewerState::Failed,
            ipaddress: None,
            domain: None,
            message: Some("test: job lost".into()),
        };
        c.set_viewer_state(&report).await.unwrap();
    });
    let out = define(&work, &ours, Some((&p, 1, &me)));
    let saved = vrun_proto::outdisk::write_saved(&out, b"the users' triage work").unwrap();
    // A domain of an old generation of a pair nobody knows, someone else's domain, and the
    // other agent-monitor's viewer of the same pair and generation, with its own saved work.
    define(&work, &old, Some((&pair("sweepold", "CodeDX"), 99, &me)));
    define(&work, "foreign-sweep-test", None);
    let their_out = define(&work, &theirs, Some((&p, 1, other)));
    let their_saved = vrun_proto::outdisk::write_saved(&their_out, b"the other daemon's users' work").unwrap();

    eventually("the orphans are removed", Duration::from_secs(60), || !domain_exists(&ours) && !domain_exists(&old));
    assert!(domain_exists("foreign-sweep-test"), "a domain without vrun's metadata was touched");
    assert!(!work.join(&ours).exists(), "the orphan's work directory remains");
    // Several sweeps later, another agent-monitor's domain and files are untouched.
    std::thread::sleep(Duration::from_secs(3));
    assert!(domain_exists(&theirs), "another agent-monitor's domain was removed");
    assert!(their_out.exists(), "another agent-monitor's work directory was removed");
    assert!(!env.state_dir().join(format!("archives/sweeporphan/CodeDX/g1-{their_saved}.archive")).exists());
    assert!(!d.log().contains(&theirs), "another agent-monitor's domain is not even reported on:\n{}", d.log());
    // `status` lists it as foreign.
    let host = runtime().block_on(c.host_info()).unwrap();
    assert_eq!(host.monitor_id, me);
    assert!(host.foreign_domains.iter().any(|f| f.name == theirs && f.owner == other), "{host:?}");
    assert!(host.foreign_domains.iter().all(|f| f.owner != me), "its own domains are not foreign: {host:?}");
    // The salvaged database is the pair's newest archive: the next launch restores it.
    let archive = env.state_dir().join(format!("archives/sweeporphan/CodeDX/g1-{saved}.archive"));
    assert_eq!(std::fs::read(&archive).unwrap(), b"the users' triage work");
    runtime().block_on(async {
        let rec = c.viewer_status(&p).await.unwrap();
        assert!(rec.history.iter().any(|t| t.reason.contains("salvaged")), "{:?}", rec.history);
        let g2 = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(2, Duration::from_secs(20));
        let spec = jobs.iter().map(|(_, f)| job_spec(f)).find(|s| s.generation == g2).unwrap();
        assert_eq!(spec.db_path.as_deref(), Some(archive.to_str().unwrap()));
        assert_eq!(spec.monitor_id, me, "jobs carry their agent-monitor's id");
    });
    assert!(d.log().contains("sweep: domain removed"), "decisions are logged");
}

#[test]
fn a_job_that_dies_silently_is_failed_by_the_sweep_before_its_lease_ends() {
    let env = Env::new();
    // A long lease, so that only the sweep can notice.
    let d = env.start(&["--sweep-secs", "1", "--lease-secs", "300"]);
    let c = d.client();
    let p = pair("sweepjob", "CodeDX");
    runtime().block_on(async {
        c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap();
    });
    let (pid, _) = env.wait_launches(1, Duration::from_secs(20))[0].clone();
    // The job is recorded as started shortly after the spawn.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: killing the test's own stand-in job.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("the instance is failed", Duration::from_secs(20), || {
        runtime().block_on(c.viewer_status(&p)).unwrap().state == "failed"
    });
    let rec = runtime().block_on(c.viewer_status(&p)).unwrap();
    assert!(rec.reason.contains("exited without reporting"), "{}", rec.reason);
}

#[test]
fn an_instance_stuck_in_launching_is_failed_at_its_deadline() {
    let env = Env::new();
    let d = env.start(&["--sweep-secs", "1", "--launch-deadline-secs", "2"]);
    let c = d.client();
    let p = pair("sweepstuck", "CodeDX");
    runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        // The job heartbeats (so its lease holds) but never gets anywhere.
        for _ in 0..40 {
            if c.viewer_status(&p).await.unwrap().state == "failed" {
                break;
            }
            let _ = c.heartbeat(&p, g).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let rec = c.viewer_status(&p).await.unwrap();
        assert_eq!(rec.state, "failed");
        assert!(rec.reason.contains("stuck in launching"), "{}", rec.reason);
    });
    let (pid, _) = env.launches()[0];
    eventually("the stuck job is cancelled", Duration::from_secs(40), || !common::pid_alive(pid));
}

/// A real viewer process on the host answers the activity endpoint.
fn start_viewer(dir: &std::path::Path, apikey: &str, context: &str) -> (std::process::Child, String) {
    std::fs::write(dir.join("key"), apikey).unwrap();
    let mut child = Command::new(workspace_bin("viewer"))
        .args(["serve", "--project", "p", "--users", "alice", "--listen", "127.0.0.1:0", "--context", context])
        .arg("--apikey-file")
        .arg(dir.join("key"))
        .arg("--data")
        .arg(dir.join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let addr = line.trim().strip_prefix("VIEWERUP ").expect("VIEWERUP line").to_string();
    (child, addr)
}

#[test]
fn idle_and_overaged_viewers_are_stopped_through_the_normal_path() {
    let env = Env::new();
    let d = env.start(&["--sweep-secs", "1", "--idle-timeout-secs", "2", "--max-lifetime-secs", "3600"]);
    let c = d.client();
    let p = pair("idle", "CodeDX");
    let (g, apikey, urluuid) = runtime().block_on(async {
        let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        let jobs = env.wait_launches(1, Duration::from_secs(20));
        let spec = job_spec(&jobs[0].1);
        (g, spec.apikey, spec.urluuid)
    });
    let vdir = tempfile::tempdir().unwrap();
    let (mut viewer, addr) = start_viewer(vdir.path(), &apikey, &format!("/{urluuid}"));
    runtime().block_on(async {
        let ready = SetViewerState {
            pair: p.clone(),
            generation: g,
            state: ViewerState::Ready,
            ipaddress: Some(addr.clone()),
            domain: None,
            message: None,
        };
        c.set_viewer_state(&ready).await.unwrap();
        // While the viewer is used it stays up (each API call counts as activity).
        let http = reqwest::Client::new();
        for _ in 0..12 {
            let r = http
                .get(format!("http://{addr}/{urluuid}/api/projects"))
                .header("API-Key", &apikey)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(c.viewer_status(&p).await.unwrap().state, "ready", "a busy viewer was stopped");
        // Left alone, it is stopped for idleness through `stopping` (so the job saves it).
        for _ in 0..60 {
            if c.viewer_status(&p).await.unwrap().state == "stopping" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let rec = c.viewer_status(&p).await.unwrap();
        assert_eq!(rec.state, "stopping");
        assert!(rec.reason.contains("idle for"), "{}", rec.reason);
        assert!(!c.heartbeat(&p, g).await.unwrap(), "the job is told to stop");
    });
    let _ = viewer.kill();
    let _ = viewer.wait();
}

#[test]
fn a_viewer_past_its_lifetime_is_stopped_however_busy() {
    let env = Env::new();
    let dir = env.tmp.path().join("cfg.toml");
    // Per viewer type: only CodeDX viewers have the short lifetime.
    std::fs::write(&dir, "[viewer.CodeDX]\nmax_lifetime_secs = 1\n").unwrap();
    let d = env.start(&["--sweep-secs", "1", "--config", dir.to_str().unwrap()]);
    let c = d.client();
    let (short, long) = (pair("life", "CodeDX"), pair("life", "Other"));
    runtime().block_on(async {
        for p in [&short, &long] {
            let g = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
            let ready = SetViewerState {
                pair: p.clone(),
                generation: g,
                state: ViewerState::Ready,
                ipaddress: Some("127.0.0.1:9".into()),
                domain: None,
                message: None,
            };
            c.set_viewer_state(&ready).await.unwrap();
        }
        for _ in 0..40 {
            if c.viewer_status(&short).await.unwrap().state == "stopping" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let rec = c.viewer_status(&short).await.unwrap();
        assert_eq!(rec.state, "stopping");
        assert!(rec.reason.contains("max_lifetime"), "{}", rec.reason);
        assert_eq!(c.viewer_status(&long).await.unwrap().state, "ready", "the override applies to its type only");
    });
}
