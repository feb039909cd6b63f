//! Real Python (`xmlrpc.client`) and Perl (`RPC::XML::Client`) clients call every method,
//! sending only required members, with the credentials each role really uses.

mod common;

#[test]
fn python_xmlrpc_client_calls_every_method() {
    let env = common::Env::new();
    let d = env.start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&d.url)
        .arg(&d.state_dir)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "interop.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interop ok"));
}

#[test]
fn perl_rpc_xml_client_calls_every_method() {
    let env = common::Env::new();
    let d = env.start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.pl");
    let out = std::process::Command::new("perl")
        .arg(script)
        .arg(&d.url)
        .arg(&d.state_dir)
        .output()
        .expect("perl is installed");
    assert!(
        out.status.success(),
        "interop.pl failed (is librpc-xml-perl installed?):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("perl interop ok"));
}
