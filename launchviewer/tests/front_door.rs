//! agent-monitor's front door, end to end on the host (docs/frontdoor.md): the real
//! agent-monitor with its front door listener, launchviewer, and the real `viewer` binary
//! run by `tests/host-job` in place of a VM (in `early` mode: the job reports ready 1.5 s
//! before its viewer listens, as a VM whose forward is up before the viewer is).
//!
//! The URL launchviewer prints is opened exactly as printed (no headers added); the pages
//! for a reused, expired, foreign or unauthorised login, a missing session, a stopped and a
//! restarting viewer are the documented ones; a forged user header sent straight to the
//! viewer's port is refused; an upload streams through the proxy in bounded memory.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{abort, availability, free_port, sample, Env, Mode};
use vrun_proto::frontdoor::{make_login, make_session, Login};

const V: &str = "CodeDX";

/// An Env whose agent-monitor runs a front door; trusted-header mode for peer 127.0.0.2.
fn env() -> (Env, String) {
    let fd = format!("127.0.0.1:{}", free_port());
    let env = Env::start_with(
        Mode::Early,
        &["--front-door-listen", &fd, "--front-door-trusted-peers", "127.0.0.2"],
        &[("RUST_LOG", "info")],
    );
    (env, format!("http://{fd}"))
}

fn view(env: &Env, project: &str, user: &str) -> String {
    let run = env.launchviewer(&[
        "--project",
        project,
        "--viewer",
        V,
        "--results",
        &sample(),
        "--user",
        user,
        "--wait",
        "120",
    ]);
    run.ready_url()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A client that shows redirects instead of following them, from `local` (an IP).
fn client(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(Some(local.parse().unwrap()))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    location: String,
    set_cookie: String,
    body: String,
}

fn get(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    rt().block_on(async {
        let mut req = c.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let (status, location, set_cookie) = (r.status().as_u16(), h("location"), h("set-cookie"));
        Answer { status, location, set_cookie, body: r.text().await.unwrap() }
    })
}

/// The front door's key, as agent-monitor created it (for tokens a test must forge).
fn key(env: &Env) -> Vec<u8> {
    let text = std::fs::read_to_string(env.daemon.state_dir.join("secrets/frontdoor.key")).unwrap();
    hex::decode(text.trim()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `http://fd/proxy-…/projects/N?vrun_login=T` → (`proxy-…`, `/proxy-…/projects/N`, T).
fn parts(url: &str, front: &str) -> (String, String, String) {
    let rest = url.strip_prefix(front).unwrap_or_else(|| panic!("{url} is not at the front door {front}"));
    let (path, token) = rest.split_once("?vrun_login=").unwrap_or_else(|| panic!("no login token in {url}"));
    let urluuid = path.trim_start_matches('/').split('/').next().unwrap().to_owned();
    (urluuid, path.to_owned(), token.to_owned())
}

#[test]
fn the_printed_url_opens_in_a_browser() {
    let (env, front) = env();
    let url = view(&env, "fdbrowser", "alice");
    parts(&url, &front);
    let shot = std::env::temp_dir().join("front-door-triaged.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/open_findings.py");
    let out = Command::new("/usr/bin/python3")
        .args([script, &url, "20", "unused variable 'rc'", "front door: not a bug", shot.to_str().unwrap()])
        .output()
        .expect("run /usr/bin/python3 (Debian's, with python3-selenium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("TRIAGED "),
        "browser flow failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        env.daemon_log()
    );
}

#[test]
fn logins_sessions_and_refusals_give_the_documented_pages() {
    let (env, front) = env();
    let url = view(&env, "fdpages", "alice");
    let (urluuid, path, token) = parts(&url, &front);
    let c = client("127.0.0.1");
    let clean = format!("{front}{path}");

    // The token becomes a session cookie, and the answer leads to the clean URL.
    let a = get(&c, &url, &[]);
    assert_eq!((a.status, a.location.as_str()), (303, path.as_str()), "{}", a.body);
    for attr in ["vrun_session=", &format!("Path=/{urluuid}/"), "HttpOnly", "SameSite=Lax"] {
        assert!(a.set_cookie.contains(attr), "{attr} missing in {}", a.set_cookie);
    }
    let cookie = a.set_cookie.split(';').next().unwrap().to_owned();
    let page = get(&c, &clean, &[("cookie", &cookie)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"findings\""), "{}", page.body);

    // Requests reuse the front door's connection to the viewer (a pool, not one each).
    let viewer_port: u16 = availability(&env, "fdpages", V).address.rsplit(':').next().unwrap().parse().unwrap();
    let before = sockets_to(viewer_port);
    for _ in 0..5 {
        assert_eq!(get(&c, &clean, &[("cookie", &cookie)]).status, 200);
    }
    let opened = sockets_to(viewer_port).saturating_sub(before);
    assert!(opened <= 1, "5 page views opened {opened} connections to the viewer");

    // Each refusal has its own page.
    let expect = |what: &str, a: Answer, status: u16, words: &str| {
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert!(a.body.contains(words), "{what}: expected {words:?} in {}", a.body);
    };
    expect("the same link again", get(&c, &url, &[]), 403, "already used");
    expect("no session", get(&c, &clean, &[]), 401, "not signed in");
    let k = key(&env);
    let login = |user: &str, expires: i64| {
        let l = Login { id: format!("{:032x}", now() as u128 * 7 + expires as u128), user: user.into(), expires };
        format!("{clean}?vrun_login={}", make_login(&k, &urluuid, &l))
    };
    expect("an expired link", get(&c, &login("alice", now() - 1), &[]), 403, "has expired");
    expect("a user not authorised", get(&c, &login("mallory", now() + 60), &[]), 403, "Access denied");
    let mallory = format!("vrun_session={}", make_session(&k, &urluuid, "mallory", now() + 60));
    expect("an unauthorised session", get(&c, &clean, &[("cookie", &mallory)]), 403, "Access denied");
    let other = view(&env, "fdother", "alice");
    let (other_uuid, _, other_token) = parts(&other, &front);
    assert_ne!(other_uuid, urluuid);
    let foreign = format!("{clean}?vrun_login={other_token}");
    expect("another viewer's link", get(&c, &foreign, &[]), 403, "not valid for this viewer");
    expect("an altered link", get(&c, &format!("{clean}?vrun_login=x{token}"), &[]), 403, "not valid");

    // Trusted-header mode: only from the configured peer, and only for authorised users.
    let trusted = client("127.0.0.2");
    assert_eq!(get(&trusted, &clean, &[("X-Vrun-User", "alice")]).status, 200);
    expect(
        "a trusted peer's unauthorised user",
        get(&trusted, &clean, &[("X-Vrun-User", "mallory")]),
        403,
        "Access denied",
    );
    expect("the user header from elsewhere", get(&c, &clean, &[("X-Vrun-User", "alice")]), 401, "not signed in");

    // Straight at the viewer's port, a forged user header (or a made-up proof) is refused.
    let avail = availability(&env, "fdpages", V);
    let direct = format!("http://{}{}", avail.address, path);
    assert_eq!(get(&c, &direct, &[("Authorization", "SWAMP alice")]).status, 403);
    assert_eq!(get(&c, &direct, &[("X-Vrun-Proof", &format!("v1:{}:alice:{}", now(), "0".repeat(64)))]).status, 403);

    // Page views through the front door are activity the idle shutdown sees.
    let activity = || {
        let base = format!("http://{}/{urluuid}", avail.address);
        common::api_get(&base, &avail.apikey, "activity")["last_activity"].as_i64().unwrap()
    };
    let before = activity();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&c, &clean, &[("cookie", &cookie)]).status, 200);
    assert!(activity() > before, "a page view through the front door was not activity");

    // Stopped: the page says so. Launched again: the same URL says "starting", then the
    // viewer answers (a new generation behind the same path; the session still holds).
    abort(&env, "fdpages", V);
    let end = Instant::now() + Duration::from_secs(30);
    let gone = loop {
        let a = get(&c, &clean, &[("cookie", &cookie)]);
        if a.status == 410 || Instant::now() > end {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    expect("a stopped viewer", gone, 410, "was stopped");
    let launcher = env.client("launcher");
    let pair = vrun_proto::Pair::new("fdpages", V).unwrap();
    let mut req = vrun_proto::methods::LaunchViewer::new(pair);
    req.user = Some("alice".into());
    rt().block_on(launcher.launch_viewer(&req)).unwrap();
    let index = format!("{front}/{urluuid}/");
    let first = get(&c, &index, &[("cookie", &cookie)]);
    expect("a viewer starting", first, 503, "is starting");
    let end = Instant::now() + Duration::from_secs(60);
    let mut seen_starting_after_ready = false;
    loop {
        let a = get(&c, &index, &[("cookie", &cookie)]);
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503, "{}", a.body);
        seen_starting_after_ready |= availability(&env, "fdpages", V).ready;
        assert!(Instant::now() < end, "the viewer never answered behind the front door: {}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = availability(&env, "fdpages", V);
    assert_eq!(again.urluuid, urluuid, "the pair's URL changed across a relaunch");
    assert!(again.generation > avail.generation);
    assert!(seen_starting_after_ready, "never saw 'starting' while the viewer was ready but not listening");
}

/// Local TCP sockets (any state, TIME_WAIT included) whose remote end is 127.0.0.1:`port`.
fn sockets_to(port: u16) -> usize {
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some(remote.as_str()))
        .count()
}

/// Peak resident memory of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_60_mb_upload_streams_through_the_front_door() {
    let (env, front) = env();
    let url = view(&env, "fdupload", "alice");
    let (urluuid, _, _) = parts(&url, &front);
    let avail = availability(&env, "fdupload", V);
    let pid = env.daemon.child.id();
    let before = vm_hwm_kib(pid);
    let big = vec![b'x'; 60_000_000];
    let status = rt().block_on(async {
        let form =
            reqwest::multipart::Form::new().part("file1", reqwest::multipart::Part::bytes(big).file_name("big.sarif"));
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{front}/{urluuid}/api/projects/1/analysis"))
            .header("API-Key", &avail.apikey)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    // The viewer took the whole upload (it answers only after spooling it to disk).
    assert_eq!(status, 202);
    let grew_mib = (vm_hwm_kib(pid).saturating_sub(before)) / 1024;
    eprintln!("agent-monitor peak memory: {} MiB before, grew by {grew_mib} MiB", before / 1024);
    assert!(grew_mib < 16, "agent-monitor's peak memory grew by {grew_mib} MiB while 60 MB passed through");
}

#[test]
fn the_front_door_speaks_tls_with_a_certificate_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=vrun front door test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let fd = format!("127.0.0.1:{}", free_port());
    let env = Env::start_with(
        Mode::Normal,
        &[
            "--front-door-listen",
            &fd,
            "--front-door-tls-cert",
            cert.to_str().unwrap(),
            "--front-door-tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = view(&env, "fdtls", "alice");
    assert!(url.starts_with(&format!("https://{fd}/proxy-")), "{url}");
    // What a browser does: follow the sign-in redirect with cookies, trusting the certificate.
    let jar = tmp.path().join("jar");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-L", "-D", "-", "--cacert"])
        .arg(&cert)
        .arg("-c")
        .arg(&jar)
        .arg("-b")
        .arg(&jar)
        .arg(&url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let cookie = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_default();
    assert!(cookie.contains("; Secure"), "the session cookie is not Secure under TLS: {cookie:?}");
    assert!(text.contains("id=\"findings\""), "no findings page over TLS: {text}");
    // Plain HTTP to the TLS port gets no page.
    let plain = Command::new("curl").args(["-sS", "--max-time", "10", &format!("http://{fd}/")]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("<h1>"), "plain HTTP was answered on the TLS port");
}
