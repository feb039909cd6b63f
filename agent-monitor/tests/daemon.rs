//! The daemon as a process: one per state directory, clean SIGTERM, bad input refused.

mod common;

use std::process::Command;

use common::{runtime, Env};
use vrun_proto::{FaultCode, Pair};

#[test]
fn second_daemon_on_the_same_directory_is_refused() {
    let env = Env::new();
    let first = env.start(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_agent-monitor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(env.state_dir())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(&env.state_dir().display().to_string()), "{err}");
    assert!(err.contains(&first.child.id().to_string()), "names the holder pid: {err}");
}

#[test]
fn sigterm_stops_cleanly_and_state_survives() {
    let env = Env::new();
    let d = env.start(&[]);
    let p = Pair::new("keep", "CodeDX").unwrap();
    let g = runtime()
        .block_on(d.client().launch_viewer(&vrun_proto::methods::LaunchViewer::new(p.clone())))
        .unwrap()
        .generation;
    env.wait_launches(1, std::time::Duration::from_secs(20));
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    let d2 = env.start(&[]);
    let rec = runtime().block_on(d2.client().viewer_status(&p)).unwrap();
    assert_eq!((rec.generation, rec.state.as_str()), (g, "launching"), "adopted, not forgotten");
    // The start-up repair runs beside the first requests; its verdict arrives in the log.
    common::eventually("the running job is adopted", std::time::Duration::from_secs(20), || {
        d2.log().contains("adopted=1")
    });
}

#[test]
fn invalid_names_are_refused_and_nothing_is_stored() {
    let env = Env::new();
    let d = env.start(&[]);
    let c = d.client();
    let long = "x".repeat(10_000);
    let bad = ["../etc", "a;rm -rf /", "a\nb", "$(reboot)", "a b", "", "-x", long.as_str()];
    runtime().block_on(async {
        for name in bad {
            let params =
                vec![vrun_proto::value::StructBuilder::new().str("project", name).str("viewer", "CodeDX").build()];
            let err = c.call(vrun_proto::methods::LAUNCH_VIEWER, params).await.unwrap_err();
            assert_eq!(err.fault_code(), Some(FaultCode::InvalidName), "{name:?}: {err}");
        }
        // Unknown members, wrong types and missing members are faults too.
        let cases = [
            vrun_proto::value::StructBuilder::new().str("project", "p").str("viewer", "v").str("colour", "red").build(),
            vrun_proto::value::StructBuilder::new().str("project", "p").bool("viewer", true).build(),
            vrun_proto::value::StructBuilder::new().str("project", "p").build(),
        ];
        for v in cases {
            let err = c.call(vrun_proto::methods::LAUNCH_VIEWER, vec![v]).await.unwrap_err();
            assert_eq!(err.fault_code(), Some(FaultCode::InvalidParams), "{err}");
        }
        let err = c.call("agentMonitor.rmRf", vec![]).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::UnknownMethod));
        assert!(c.list_viewers().await.unwrap().is_empty(), "a refused call stored something");
    });
    assert!(env.launches().is_empty());
}

#[test]
fn hostile_bodies_get_faults_and_the_daemon_keeps_serving() {
    let env = Env::new();
    let d = env.start(&["--max-body-bytes", "100000"]);
    let admin = std::fs::read_to_string(env.state_dir().join("secrets/admin.secret")).unwrap();
    let user = format!("admin:{}", admin.trim());
    let post = |body: Vec<u8>| -> String {
        let out = Command::new("curl")
            .args(["-s", "-u", &user, "-H", "Content-Type: text/xml", "--data-binary", "@-", &d.url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut ch| {
                use std::io::Write;
                ch.stdin.take().unwrap().write_all(&body)?;
                ch.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let code = |resp: &str| -> i32 {
        let i = resp.find("<name>faultCode</name>").unwrap_or_else(|| panic!("not a fault: {resp}"));
        let rest = &resp[i..];
        let s = rest.find("<i4>").or(rest.find("<int>")).unwrap();
        rest[s..].split(['>', '<']).nth(2).unwrap().parse().unwrap()
    };
    let call = |inner: &str| {
        format!("<?xml version=\"1.0\"?><methodCall><methodName>agentMonitor.launchViewer</methodName><params>{inner}</params></methodCall>")
    };
    let deep = format!("<param><value>{}</value></param>", "<array><data><value>".repeat(2000));
    let cases: Vec<(&str, Vec<u8>, FaultCode)> = vec![
        ("malformed", b"<methodCall><methodName>x".to_vec(), FaultCode::MalformedRequest),
        ("not xml", b"hello".to_vec(), FaultCode::MalformedRequest),
        ("non-utf8", vec![b'<', 0xff, 0xfe, b'>'], FaultCode::MalformedRequest),
        ("deeply nested", call(&deep).into_bytes(), FaultCode::MalformedRequest),
        (
            "oversized",
            call(&"<param><value><string>x</string></value></param>".repeat(5000)).into_bytes(),
            FaultCode::RequestTooLarge,
        ),
        ("wrong type", call("<param><value><int>3</int></value></param>").into_bytes(), FaultCode::InvalidParams),
        ("no params", call("").into_bytes(), FaultCode::InvalidParams),
    ];
    for (what, body, want) in cases {
        let resp = post(body);
        assert_eq!(code(&resp), want.code(), "{what}: {resp}");
    }
    // Still serving, nothing stored.
    let rt = runtime();
    assert!(rt.block_on(d.client().list_viewers()).unwrap().is_empty());
}

#[test]
fn credentials_and_roles_are_enforced() {
    use vrun_proto::client::{AgentMonitorClient, Credentials};
    use vrun_proto::methods::{LaunchViewer, SetViewerState};
    let env = Env::new();
    let d = env.start(&[]);
    let p = Pair::new("authz", "CodeDX").unwrap();
    let secrets = env.state_dir().join("secrets");
    for f in ["admin.secret", "launcher.secret", "jobs.key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(secrets.join(f)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{f} must be private");
    }
    let admin_secret = std::fs::read_to_string(secrets.join("admin.secret")).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let nobody = AgentMonitorClient::new(&d.url, Credentials::None).unwrap();
        let wrong =
            AgentMonitorClient::new(&d.url, Credentials::Basic { user: "admin".into(), secret: "guess".into() })
                .unwrap();
        for c in [&nobody, &wrong] {
            let err = c.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap_err();
            assert_eq!(err.fault_code(), Some(FaultCode::NotAuthorised), "{err}");
        }
        let launcher = d.client_as("launcher");
        let g = launcher.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap().generation;
        // The launcher may not stop viewers or list everything.
        assert_eq!(launcher.abort_viewer(&p).await.unwrap_err().fault_code(), Some(FaultCode::NotAuthorised));
        assert_eq!(launcher.list_viewers().await.unwrap_err().fault_code(), Some(FaultCode::NotAuthorised));

        // A job's token (from its job file) speaks for its own pair and generation only.
        let jobs = env.wait_launches(1, std::time::Duration::from_secs(20));
        let token = common::job_spec(&jobs[0].1).job_token.expect("job token");
        let job = AgentMonitorClient::new(&d.url, Credentials::Bearer(token.clone())).unwrap();
        assert!(job.heartbeat(&p, g).await.unwrap());
        let report = |pair: &Pair, generation| SetViewerState {
            pair: pair.clone(),
            generation,
            state: vrun_proto::ViewerState::Booting,
            ipaddress: None,
            domain: None,
            message: None,
        };
        let other = Pair::new("other", "CodeDX").unwrap();
        for (pair, generation) in [(&other, g), (&p, g + 1)] {
            let err = job.set_viewer_state(&report(pair, generation)).await.unwrap_err();
            assert_eq!(err.fault_code(), Some(FaultCode::NotAuthorised), "{err}");
        }
        assert_eq!(
            job.launch_viewer(&LaunchViewer::new(p.clone())).await.unwrap_err().fault_code(),
            Some(FaultCode::NotAuthorised)
        );
        job.set_viewer_state(&report(&p, g)).await.unwrap();
        assert_eq!(d.client().viewer_status(&p).await.unwrap().state, "booting");
    });
    // Refusals are logged with their reason, never with a secret.
    let log = d.log();
    assert!(log.contains("refused a call"), "{log}");
    assert!(!log.contains(admin_secret.trim()), "a secret reached the log");
}

#[test]
fn status_shows_every_viewer_as_a_table_and_as_json() {
    let env = Env::new();
    let d = env.start(&[]);
    let rt = runtime();
    for p in ["statA", "statB"] {
        let pair = Pair::new(p, "CodeDX").unwrap();
        rt.block_on(d.client().launch_viewer(&vrun_proto::methods::LaunchViewer::new(pair))).unwrap();
    }
    let status = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_agent-monitor"));
        c.args(["status", "--url", &d.url, "--secret-file"]).arg(env.state_dir().join("secrets/admin.secret"));
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let table = status(false);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PROJECT") && lines[0].contains("STATE") && lines[0].contains("ADDRESS"), "{table}");
    assert!(lines.iter().any(|l| l.starts_with("statA") && l.contains("launching")), "{table}");
    let rows: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["project"], "statB");
    assert_eq!(rows[1]["state"], "launching");
    // The daemon's own hypervisor in tests is libvirt's test driver, which has no such domain.
    assert_eq!(rows[1]["domain_exists"], "no");
    // Without the admin secret, status is refused with one line.
    let out = Command::new(env!("CARGO_BIN_EXE_agent-monitor"))
        .args(["status", "--url", &d.url, "--secret-file", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
