//! Platform checks against the real daemon with a stand-in job that never brings its viewer
//! up (a platform that never boots): the platform is rejected with the reason, its scratch
//! VM's job is stopped, users keep the configured platform; bad requests change nothing.
//! The approval of a platform that boots is shown with real VMs (vruntask/tests/operator_vm.rs).

mod common;

use std::time::Duration;

use common::{eventually, pair, pid_alive, runtime, workspace_bin, Env};
use dxr::Value;
use vrun_proto::methods::{self as m, LaunchViewer};
use vrun_proto::value::StructBuilder;
use vrun_proto::FaultCode;

fn platforms(d: &common::Daemon, rt: &tokio::runtime::Runtime) -> Vec<std::collections::BTreeMap<String, Value>> {
    match rt.block_on(d.client().call(m::LIST_PLATFORMS, Vec::new())).unwrap() {
        Value::Array(rows) => rows
            .into_iter()
            .map(|r| match r {
                Value::Struct(s) => s,
                other => panic!("not a struct: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn s(row: &std::collections::BTreeMap<String, Value>, k: &str) -> String {
    row.get(k).and_then(vrun_proto::value::lenient_str).unwrap_or_default()
}

#[test]
fn a_platform_that_never_boots_is_rejected_and_users_keep_theirs() {
    let env = Env::new();
    let rt = runtime();
    let lv = workspace_bin("launchviewer");
    let d = env.start(&["--platform-check-timeout-secs", "3", "--launchviewer-command", lv.to_str().unwrap()]);
    let image = env.tmp.path().join("never-boots");
    std::fs::create_dir(&image).unwrap();
    std::fs::write(image.join("vmlinuz"), b"not a kernel").unwrap();
    let add = |name: &str, path: &str| {
        let p = StructBuilder::new().str("name", name).str("path", path).build();
        rt.block_on(d.client().call(m::ADD_PLATFORM, vec![p]))
    };
    // Bad requests: nothing recorded, nothing launched.
    assert_eq!(add("bad;name", image.to_str().unwrap()).unwrap_err().fault_code(), Some(FaultCode::InvalidName));
    assert_eq!(add("rel", "relative/path").unwrap_err().fault_code(), Some(FaultCode::InvalidParams));
    assert_eq!(add("gone", "/nonexistent/image").unwrap_err().fault_code(), Some(FaultCode::InvalidParams));
    let launcher = d.client_as("launcher");
    let p = StructBuilder::new().str("name", "x").str("path", image.to_str().unwrap()).build();
    let err = rt.block_on(launcher.call(m::ADD_PLATFORM, vec![p])).unwrap_err();
    assert_eq!(err.fault_code(), Some(FaultCode::NotAuthorised), "only an admin adds platforms");
    assert!(platforms(&d, &rt).is_empty());
    assert!(env.launches().is_empty());

    // The check: a scratch instance runs the image; its View never comes up.
    add("nb1", image.to_str().unwrap()).unwrap();
    assert_eq!(add("nb1", image.to_str().unwrap()).unwrap_err().fault_code(), Some(FaultCode::IllegalTransition));
    let jobs = env.wait_launches(1, Duration::from_secs(20));
    let spec = common::job_spec(&jobs[0].1);
    assert_eq!(spec.platform, image.to_str().unwrap(), "the scratch VM must run the platform under check");
    assert_eq!(
        platforms(&d, &rt)[0].get("state").and_then(vrun_proto::value::lenient_str).as_deref(),
        Some("validating")
    );
    eventually("the check's verdict", Duration::from_secs(60), || s(&platforms(&d, &rt)[0], "state") != "validating");
    let row = &platforms(&d, &rt)[0];
    assert_eq!(s(row, "state"), "rejected", "{row:?}");
    assert!(s(row, "reason").contains("sample View failed"), "{row:?}");
    assert_eq!(row.get("current"), Some(&Value::Boolean(false)));
    // Its scratch VM does not outlive the check.
    eventually("the scratch job stopped", Duration::from_secs(20), || !pid_alive(jobs[0].0));
    let scratch = rt.block_on(d.client().viewer_status(&pair("platform-nb1", "CodeDX"))).unwrap();
    assert_eq!(scratch.state, "failed");

    // Users still get the configured platform, not the rejected one.
    rt.block_on(launcher.launch_viewer(&LaunchViewer::new(pair("user", "CodeDX")))).unwrap();
    let jobs = env.wait_launches(2, Duration::from_secs(20));
    assert_ne!(common::job_spec(&jobs[1].1).platform, image.to_str().unwrap());
    // Removing: retired; an unknown name is fault 3.
    rt.block_on(d.client().call(m::REMOVE_PLATFORM, vec![StructBuilder::new().str("name", "nb1").build()])).unwrap();
    assert_eq!(s(&platforms(&d, &rt)[0], "state"), "retired");
    let err = rt.block_on(d.client().call(m::REMOVE_PLATFORM, vec![StructBuilder::new().str("name", "zz").build()]));
    assert_eq!(err.unwrap_err().fault_code(), Some(FaultCode::UnknownInstance));
}
