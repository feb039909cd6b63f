//! The DomainMonitor's decisions against libvirt's `test:///default` driver (in-process:
//! the monitor's sweep runs in this test process) and a real agent-monitor: a domain whose
//! job is gone is powered off, what its guest saved is stored, its instance ends and its
//! files go; a domain whose job holds its run lock stays; another node's domain and another
//! agent-monitor's are never touched; the node credential must be owner-only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrun_proto::methods::LaunchViewer;
use vrun_proto::Pair;
use vrun_test_support::Spawn;
use vruntask::domain_monitor::{Monitor, Settings, StartError};
use vruntask::domain_xml::{Boot, DomainSpec, Net};
use vruntask::Accel;

const URI: &str = "test:///default";

fn domain(pair: &Pair, generation: i64, owner: &str, node: &str, work: &Path) -> DomainSpec {
    let name = pair.domain_name(owner, generation);
    let dir = work.join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("output.img");
    std::fs::write(&out, vec![0u8; 64 << 10]).unwrap();
    DomainSpec {
        name,
        pair: pair.clone(),
        generation,
        monitor_id: owner.into(),
        node: node.into(),
        memory_mib: 256,
        vcpus: 1,
        accel: Accel::Tcg,
        boot: Boot::Kernel { kernel: dir.join("vmlinuz"), initrd: dir.join("initrd.img"), cmdline: "x".into() },
        config_disk: dir.join("config.img"),
        output_disk: out,
        serial_log: dir.join("serial.log"),
        net: Net::Loopback { bind: std::net::Ipv4Addr::LOCALHOST, host_port: 40000, guest_port: 8080 },
    }
}

fn define_and_start(conn: &virt::connect::Connect, s: &DomainSpec) {
    let dom = conn.define_domain_xml(&s.to_xml()).unwrap();
    dom.create().unwrap();
}

fn exists(conn: &virt::connect::Connect, name: &str) -> bool {
    conn.lookup_domain_by_name(name).is_ok()
}

fn settings(node: &str, url: &str, secret: &Path, runtime: &Path, work: &Path) -> Settings {
    Settings {
        node: node.into(),
        uri: URI.into(),
        agent_monitor_url: url.into(),
        secret_file: secret.into(),
        runtime_dir: runtime.into(),
        work_root: work.into(),
        every: Duration::from_secs(1),
        stop_timeout: Duration::from_secs(5),
        grace: Duration::from_secs(60),
        libvirt_timeout: Duration::from_secs(10),
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn salvages_only_its_own_nodes_domains_whose_job_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let (runtime, work) = (tmp.path().join("run"), tmp.path().join("work"));
    // Stand-in jobs: they hold nothing and wait to be killed (their PIDs are kept for that).
    let pids = tmp.path().join("job.pids");
    let job = tmp.path().join("fake-job");
    std::fs::write(&job, format!("#!/bin/sh\necho $$ >> {}\nexec sleep 120\n", pids.display())).unwrap();
    std::fs::set_permissions(&job, std::fs::Permissions::from_mode(0o755)).unwrap();
    let am = Spawn::new(&tmp.path().join("state"), &job)
        .args(["--libvirt-uri", "none", "--lease-secs", "600", "--start-grace-secs", "600", "--sweep-secs", "600"])
        .start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let admin = am.client();
    let tag = std::process::id();
    let pairs: Vec<Pair> =
        ["dead", "alive", "elsewhere"].iter().map(|n| Pair::new(&format!("{n}{tag}"), "CodeDX").unwrap()).collect();
    let gens: Vec<i64> = pairs
        .iter()
        .map(|p| {
            let mut req = LaunchViewer::new(p.clone());
            req.user = Some("alice".into());
            rt.block_on(admin.launch_viewer(&req)).unwrap().generation
        })
        .collect();
    let me = rt.block_on(admin.host_info()).unwrap().monitor_id;

    // Held open for the whole test: test:///default starts over when its last connection closes.
    let conn = virt::connect::Connect::open(Some(URI)).unwrap();
    let dead = domain(&pairs[0], gens[0], &me, "n1", &work);
    let alive = domain(&pairs[1], gens[1], &me, "n1", &work);
    let elsewhere = domain(&pairs[2], gens[2], &me, "n2", &work);
    let foreign = domain(&pairs[0], gens[0], "fedcba987654", "n1", &work);
    for d in [&dead, &alive, &elsewhere, &foreign] {
        define_and_start(&conn, d);
    }
    let db = b"the users' triage work".to_vec();
    let sum = vrun_proto::outdisk::write_saved(&dead.output_disk, &db).unwrap();
    let run_lock = vruntask::joblock::RunLock::take(&runtime, &alive.name).unwrap();

    // The credential must be owner-only.
    let loose = tmp.path().join("loose.secret");
    std::fs::copy(am.secret("node"), &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(Monitor::new(settings("n1", &am.url, &loose, &runtime, &work)), Err(StartError::SecretMode(_))));

    // With agent-monitor away it acts on nothing: the VM keeps running, its database unsaved.
    let away = format!("http://127.0.0.1:{}/RPC2", vrun_test_support::free_port());
    let mut lonely = Monitor::new(settings("n1", &away, &am.secret("node"), &runtime, &work)).unwrap();
    assert_eq!(rt.block_on(lonely.sweep_once()), 0);
    assert!(exists(&conn, &dead.name));
    let running = conn.lookup_domain_by_name(&dead.name).unwrap().is_active().unwrap();
    assert!(running, "not even powered off while agent-monitor cannot take its database");

    // Salvage reports are checked: another pair's domain name, or the wrong node.
    let node = am.client_as("node");
    let forged = vrun_proto::node::NodeSalvaged {
        node: "n1".into(),
        domain: pairs[1].domain_name(&me, gens[1]),
        pair: pairs[0].clone(),
        generation: gens[0],
        reason: "forged".into(),
        saved: None,
    };
    let e = rt.block_on(node.node_salvaged(&forged)).unwrap_err();
    assert_eq!(e.fault_code(), Some(vrun_proto::FaultCode::NotAuthorised), "{e}");
    let unknown =
        vrun_proto::node::NodeSalvaged { domain: pairs[0].domain_name(&me, 999), generation: 999, ..forged.clone() };
    let e = rt.block_on(node.node_salvaged(&unknown)).unwrap_err();
    assert_eq!(e.fault_code(), Some(vrun_proto::FaultCode::UnknownInstance), "{e}");
    assert_eq!(
        rt.block_on(admin.viewer_status(&pairs[0])).unwrap().state,
        "launching",
        "a refused report changes nothing"
    );

    let mut n1 = Monitor::new(settings("n1", &am.url, &am.secret("node"), &runtime, &work)).unwrap();
    assert_eq!(rt.block_on(n1.sweep_once()), 1, "only the domain whose job is gone");
    assert!(!exists(&conn, &dead.name), "the dead job's domain is removed");
    assert!(!work.join(&dead.name).exists(), "and its work directory");
    for d in [&alive, &elsewhere, &foreign] {
        assert!(exists(&conn, &d.name), "{} is left alone", d.name);
    }
    let rec = rt.block_on(admin.viewer_status(&pairs[0])).unwrap();
    assert_eq!(rec.state, "failed", "{rec:#?}");
    assert!(rec.reason.contains("node n1's DomainMonitor") && rec.reason.contains("job is gone"), "{rec:#?}");
    assert!(rec.reason.contains(&sum), "the salvaged database is named: {rec:#?}");
    let archives = files_under(&am.state_dir.join("archives"));
    assert_eq!(archives.len(), 1, "{archives:?}");
    assert_eq!(std::fs::read(&archives[0]).unwrap(), db, "what the guest saved is what is kept");
    let rec = rt.block_on(admin.viewer_status(&pairs[1])).unwrap();
    assert_eq!((rec.state.as_str(), rec.node.as_str(), rec.domain_exists.as_str()), ("launching", "n1", "yes"));
    // The node is now known for it: another node may not report its salvage.
    let wrong_node = vrun_proto::node::NodeSalvaged {
        node: "n3".into(),
        domain: alive.name.clone(),
        pair: pairs[1].clone(),
        generation: gens[1],
        reason: "forged".into(),
        saved: None,
    };
    let e = rt.block_on(node.node_salvaged(&wrong_node)).unwrap_err();
    assert!(
        e.fault_code() == Some(vrun_proto::FaultCode::NotAuthorised) && e.to_string().contains("runs on node n1"),
        "{e}"
    );

    // The status table says where each runs and whether its domain exists.
    let list = rt.block_on(admin.list_viewers()).unwrap();
    let row = |p: &Pair| list.iter().find(|r| r.project == p.project()).unwrap().clone();
    assert_eq!(row(&pairs[0]).domain_exists, "no");
    assert_eq!(row(&pairs[1]).domain_exists, "yes");
    assert_eq!(row(&pairs[2]).domain_exists, "unknown", "n2 never reported and agent-monitor has no libvirt");

    // So does `agent-monitor status`, with the nodes that report.
    let out = std::process::Command::new(vrun_test_support::workspace_bin("agent-monitor"))
        .args(["status", "--url", &am.url, "--secret-file"])
        .arg(am.secret("admin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |p: &Pair| text.lines().find(|l| l.starts_with(p.project())).unwrap_or_default().to_string();
    let cols = |p: &Pair| line(p).split_whitespace().map(String::from).collect::<Vec<_>>();
    assert!(cols(&pairs[1]).windows(2).any(|w| w == ["n1", "yes"]), "NODE n1, DOMAIN yes:\n{text}");
    assert!(line(&pairs[0]).contains("DomainMonitor"), "the REASON column is shown:\n{text}");
    assert!(text.contains("nodes reporting (DomainMonitors): n1 (1 domain(s))"), "{text}");

    // Another role may not report for a node.
    let as_launcher = am.client_as("launcher");
    let inv = vrun_proto::node::NodeInventory { node: "n1".into(), domains: vec![] };
    let e = rt.block_on(as_launcher.node_inventory(&inv)).unwrap_err();
    assert_eq!(e.fault_code(), Some(vrun_proto::FaultCode::NotAuthorised), "{e}");

    // The live job's domain goes once its job does; its guest saved nothing.
    drop(run_lock);
    assert_eq!(rt.block_on(n1.sweep_once()), 1);
    assert!(!exists(&conn, &alive.name));
    let rec = rt.block_on(admin.viewer_status(&pairs[1])).unwrap();
    assert!(rec.state == "failed" && rec.reason.contains("saved no database"), "{rec:#?}");
    assert_eq!(rec.domain_exists, "no");

    // n2's own DomainMonitor does take n2's domain.
    let mut n2 = Monitor::new(settings("n2", &am.url, &am.secret("node"), &runtime, &work)).unwrap();
    assert_eq!(rt.block_on(n2.sweep_once()), 1);
    assert!(!exists(&conn, &elsewhere.name));
    assert!(exists(&conn, &foreign.name), "another agent-monitor's domain is never touched");
    let dom = conn.lookup_domain_by_name(&foreign.name).unwrap();
    let _ = dom.destroy();
    dom.undefine().unwrap();

    for pid in std::fs::read_to_string(&pids).unwrap_or_default().lines() {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) of a stand-in job this test's agent-monitor started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
