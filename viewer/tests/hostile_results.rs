//! Hostile results files against a real server on 127.0.0.1:0: too large, nested too deep,
//! entity bombs, compression bombs, truncated, not UTF-8. Each must be refused (413) or fail
//! its job with a message that says what was wrong, leave the project exactly as it was, not
//! blow up memory or disk, and leave the viewer serving: a valid import right after works.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use viewer::config::Limits;

/// Uncompressed size of the compression bombs: far more than the whole test may use.
const BOMB_BYTES: usize = 256 << 20;
/// Peak RSS of this test process may not reach this (an inflated bomb alone would).
const MAX_RSS_BYTES: u64 = 200 << 20;
/// The data directory may not grow past this (an inflated bomb written out would).
const MAX_DATA_BYTES: u64 = 16 << 20;

/// `BOMB_BYTES` zeros, gzip-compressed (about 250 KB), made once with the system's gzip.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut gz = Command::new("gzip")
            .args(["-9", "-c", "-n"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = gz.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..BOMB_BYTES >> 20 {
                stdin.write_all(&zeros).unwrap();
            }
        });
        let out = gz.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert!(out.stdout.len() < BOMB_BYTES / 500, "gzip compressed zeros to {} bytes", out.stdout.len());
        out.stdout
    })
}

/// A zip holding one deflated entry of `BOMB_BYTES` zeros, built from the gzip bomb's
/// deflate stream (gzip: 10-byte header, raw deflate, CRC-32 and size trailer).
fn zip_bomb() -> Vec<u8> {
    let gz = gzip_bomb();
    let deflate = &gz[10..gz.len() - 8];
    let crc = u32::from_le_bytes(gz[gz.len() - 8..gz.len() - 4].try_into().unwrap());
    let (csize, usize_) = (deflate.len() as u32, BOMB_BYTES as u32);
    let name = b"zeros.bin";
    let mut z = Vec::new();
    let common = |z: &mut Vec<u8>| {
        z.extend_from_slice(&20u16.to_le_bytes()); // version needed
        z.extend_from_slice(&0u16.to_le_bytes()); // flags
        z.extend_from_slice(&8u16.to_le_bytes()); // deflate
        z.extend_from_slice(&0u16.to_le_bytes()); // time
        z.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        z.extend_from_slice(&crc.to_le_bytes());
        z.extend_from_slice(&csize.to_le_bytes());
        z.extend_from_slice(&usize_.to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut z);
    z.extend_from_slice(name);
    z.extend_from_slice(deflate);
    let cd_offset = z.len() as u32;
    z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    z.extend_from_slice(&20u16.to_le_bytes()); // version made by
    common(&mut z);
    z.extend_from_slice(&[0; 12]); // comment len, disk, internal attrs, external attrs
    z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    z.extend_from_slice(name);
    let cd_size = z.len() as u32 - cd_offset;
    z.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&cd_size.to_le_bytes());
    z.extend_from_slice(&cd_offset.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

fn disk_usage(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_usage(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// A server with one project holding three findings of tool `lint`.
async fn server_with_findings(limits: Limits) -> (tempfile::TempDir, Server, i64, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits = limits;
    let s = Server::start(cfg).await;
    let p = s.create_project("pkg").await;
    let good: Vec<String> = (1..=3).map(|i| result("R1", "a.c", i, &format!("finding {i}"))).collect();
    s.import(p, &[("good.sarif", sarif("lint", &good))]).await;
    let before = s.findings(p, "").await;
    assert_eq!(before.len(), 3);
    (dir, s, p, before)
}

/// Uploads `files`; the job must fail with a message containing every needle, and the
/// project must be unchanged.
async fn expect_failure(s: &Server, p: i64, before: &[Value], files: &[(&str, Vec<u8>)], needles: &[&str]) {
    let job = s.upload(p, files).await;
    let (status, message) = s.wait_job(&job).await;
    let name = files.last().unwrap().0;
    eprintln!("{name}: {status}: {message}");
    assert_eq!(status, "failed", "{name}: {message}");
    for needle in needles {
        assert!(message.contains(needle), "{name}: {message:?} should mention {needle:?}");
    }
    assert!(message.len() < 1024, "{name}: message too long: {message:?}");
    assert_eq!(s.findings(p, "").await, before, "{name} changed the project");
}

/// The viewer still serves: a valid import right after adds its finding, and the upload
/// scratch space is empty again.
async fn still_serving(s: &Server, p: i64, before: &[Value]) {
    let msg = s.import(p, &[("after.sarif", sarif("after", &[result("R7", "after.c", 7, "still serving")]))]).await;
    assert_eq!(msg, "imported 1 findings (1 new) from 1 results file(s)");
    assert_eq!(s.findings(p, "").await.len(), before.len() + 1);
    let r = s.page("/", "alice").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let leftovers: Vec<_> = std::fs::read_dir(s.data.join("uploads")).unwrap().collect();
    assert!(leftovers.is_empty(), "upload files left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sarif_over_the_upload_limit_is_413() {
    let (_dir, s, p, before) = server_with_findings(Limits { max_upload_bytes: 1 << 20, ..Limits::default() }).await;
    let mut big = Vec::new();
    viewer::import::synth::write_sarif(&mut big, 20_000, 1).unwrap();
    assert!(big.len() > 2 << 20, "{}", big.len());
    for (what, form) in [
        ("one large part", Form::new().part("file1", Part::bytes(big.clone()).file_name("big.sarif"))),
        (
            "many parts",
            (1..=40).fold(Form::new(), |f, i| f.part(format!("file{i}"), Part::bytes(big[..64 << 10].to_vec()))),
        ),
    ] {
        let r = s.api(Method::POST, &format!("/projects/{p}/analysis")).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "upload is larger than the limit of 1048576 bytes", "{what}");
        assert_eq!(s.findings(p, "").await, before, "{what}");
    }
    still_serving(&s, p, &before).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_json_fails_the_job() {
    let (_dir, s, p, before) = server_with_findings(Limits::default()).await;
    let deep = 100_000;
    let head =
        r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t"}},"results":[{"ruleId":"R","message":{"text":"x"}"#;
    let brackets = |n: usize| "[".repeat(n) + &"]".repeat(n);
    // Members the parser reads are typed, so nesting there is refused at once; members it
    // skips are skipped without recursion (serde_json's ignore_value), so depth there costs
    // no stack and the file fails on what is really wrong with it.
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("brackets.sarif", "[".repeat(deep).into_bytes(), &["brackets.sarif", "neither SARIF JSON nor SCARF XML"]),
        (
            "objects.sarif",
            format!("{{{}", r#""a":{"#.repeat(deep)).into_bytes(),
            &["objects.sarif", "invalid SARIF", "EOF"],
        ),
        (
            "closed.sarif",
            format!("{{{}{}}}", r#""a":{"#.repeat(deep), "}".repeat(deep)).into_bytes(),
            &["closed.sarif", "not a SARIF 2.1.0 log", "missing \"version\""],
        ),
        (
            "in-result.sarif",
            format!(r#"{head},"properties":{}"#, "[".repeat(deep)).into_bytes(),
            &["in-result.sarif", "invalid SARIF", "EOF"],
        ),
        (
            "in-tool.sarif",
            format!(r#"{{"version":"2.1.0","runs":[{{"tool":{}"#, r#"{"x":["#.repeat(deep)).into_bytes(),
            &["in-tool.sarif", "invalid SARIF", "EOF"],
        ),
        (
            "in-message.sarif",
            format!(r#"{head},"locations":{}}}]}}]}}"#, brackets(deep)).into_bytes(),
            &["in-message.sarif", "invalid SARIF", "invalid type"],
        ),
        (
            "in-region.sarif",
            format!(
                r#"{head},"locations":[{{"physicalLocation":{{"region":{{"startLine":{}}}}}}}]}}]}}]}}"#,
                brackets(deep)
            )
            .into_bytes(),
            &["in-region.sarif", "invalid SARIF"],
        ),
    ];
    for (name, bytes, needles) in cases {
        expect_failure(&s, p, &before, &[(name, bytes)], needles).await;
    }
    // Deep but well-formed nesting in a member the viewer ignores is valid SARIF: imported.
    let valid = format!(r#"{head},"properties":{{"deep":{}}}}}]}}]}}"#, brackets(deep));
    assert_eq!(
        s.import(p, &[("deep-properties.sarif", valid.into_bytes())]).await,
        "imported 1 findings (1 new) from 1 results file(s)"
    );
    let after = s.findings(p, "").await;
    assert_eq!(after.len(), before.len() + 1);
    still_serving(&s, p, &after).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scarf_entity_bombs_and_doctypes_fail_the_job() {
    let (_dir, s, p, before) = server_with_findings(Limits::default()).await;
    let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    laughs.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1).repeat(10);
        laughs.push_str(&format!(" <!ENTITY lol{i} \"{prev}\">\n"));
    }
    let bug = |msg: &str| {
        format!("<BugInstance id=\"1\"><BugLocations><Location id=\"1\" primary=\"true\"><SourceFile>a.c</SourceFile><StartLine>1</StartLine></Location></BugLocations><BugCode>X</BugCode><BugMessage>{msg}</BugMessage></BugInstance>")
    };
    laughs.push_str(&format!("]>\n<AnalyzerReport tool_name=\"lol\">{}</AnalyzerReport>\n", bug("&lol9;")));
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><AnalyzerReport tool_name=\"x\">{}</AnalyzerReport>",
        bug("&x;")
    );
    // Without a DOCTYPE the entity is simply unknown.
    let undeclared = format!("<AnalyzerReport tool_name=\"lol\">{}</AnalyzerReport>", bug("&lol9;"));
    let deep = format!("<AnalyzerReport tool_name=\"d\">{}", "<a>".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("laughs.xml", laughs.into_bytes(), &["laughs.xml", "DOCTYPE"]),
        ("xxe.xml", xxe.into_bytes(), &["xxe.xml", "DOCTYPE"]),
        ("undeclared.xml", undeclared.into_bytes(), &["undeclared.xml", "lol9"]),
        ("deep.xml", deep.into_bytes(), &["deep.xml", "nested deeper than 64"]),
    ];
    for (name, bytes, needles) in cases {
        expect_failure(&s, p, &before, &[(name, bytes)], needles).await;
    }
    still_serving(&s, p, &before).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_bombs_are_never_inflated() {
    let (dir, s, p, before) = server_with_findings(Limits::default()).await;
    // A gzip bomb as the results file: refused by its magic bytes, never decompressed.
    let gz = gzip_bomb().to_vec();
    expect_failure(&s, p, &before, &[("results.sarif.gz", gz.clone())], &["results.sarif.gz", "gzip-compressed"]).await;
    // Also behind a good file in the same job: the whole job fails, nothing gets in.
    let extra = sarif("other", &[result("R9", "z.c", 1, "would be new")]);
    expect_failure(&s, p, &before, &[("extra.sarif", extra), ("file.gz", gz)], &["file.gz", "gzip"]).await;

    // A zip bomb as the source part (file2): accepted and ignored, as documented; the
    // results file beside it is imported.
    let zip = zip_bomb();
    assert!(zip.len() < 1 << 20);
    let msg = s
        .import(
            p,
            &[("r.sarif", sarif("zipped", &[result("Z1", "z.c", 2, "beside a zip")])), ("source.zip", zip.clone())],
        )
        .await;
    assert_eq!(msg, "imported 1 findings (1 new) from 1 results file(s)");
    let after = s.findings(p, "").await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.iter().filter(|f| f["tool"] == "zipped").count(), 1);
    // A zip alone is no results file: the job fails and says so.
    expect_failure(&s, p, &after, &[("source.zip", zip)], &["no results file"]).await;

    assert!(peak_rss() < MAX_RSS_BYTES, "peak RSS {} bytes: something was inflated", peak_rss());
    let used = disk_usage(dir.path());
    assert!(used < MAX_DATA_BYTES, "data directory holds {used} bytes: something was inflated");
    still_serving(&s, p, &after).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_non_utf8_files_fail_the_job() {
    let (_dir, s, p, before) = server_with_findings(Limits::default()).await;
    let good = sarif("lint", &[result("R2", "b.c", 4, "a finding"), result("R2", "b.c", 5, "another")]);
    let mut bad_utf8 = sarif("lint", &[result("R2", "b.c", 4, "caf\u{e9}")]);
    let at = bad_utf8.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
    bad_utf8[at] = 0xff; // a lone invalid byte inside a JSON string
    let scarf_ok = "<AnalyzerReport tool_name=\"t\"><BugInstance id=\"1\"><BugLocations><Location id=\"1\" primary=\"true\"><SourceFile>a.c</SourceFile><StartLine>1</StartLine></Location></BugLocations><BugCode>X</BugCode><BugMessage>caf\u{e9}</BugMessage></BugInstance></AnalyzerReport>";
    let mut scarf_bad_utf8 = scarf_ok.as_bytes().to_vec();
    let at = scarf_bad_utf8.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
    scarf_bad_utf8[at] = 0xff;
    let mut tool_bad_utf8 = scarf_ok.as_bytes().to_vec();
    tool_bad_utf8[scarf_ok.find("\"t\"").unwrap() + 1] = 0xfe;
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("cut-in-string.sarif", good[..good.len() / 2].to_vec(), &["cut-in-string.sarif", "invalid SARIF", "EOF"]),
        ("cut-at-end.sarif", good[..good.len() - 1].to_vec(), &["cut-at-end.sarif", "invalid SARIF", "EOF"]),
        ("cut.xml", scarf_ok.as_bytes()[..scarf_ok.len() - 20].to_vec(), &["cut.xml"]),
        ("latin1.sarif", bad_utf8, &["latin1.sarif", "invalid SARIF"]),
        ("latin1.xml", scarf_bad_utf8, &["latin1.xml", "UTF-8"]),
        ("latin1-tool.xml", tool_bad_utf8, &["latin1-tool.xml", "UTF-8"]),
        (
            "utf16.sarif",
            "\u{feff}{\"version\":\"2.1.0\",\"runs\":[]}".encode_utf16().flat_map(u16::to_le_bytes).collect(),
            &["utf16.sarif", "neither SARIF JSON nor SCARF XML"],
        ),
        (
            "binary.sarif",
            (0..=255u8).cycle().take(4096).collect(),
            &["binary.sarif", "neither SARIF JSON nor SCARF XML"],
        ),
    ];
    for (name, bytes, needles) in cases {
        expect_failure(&s, p, &before, &[(name, bytes)], needles).await;
    }
    still_serving(&s, p, &before).await;
    s.stop().await;
}
