//! Boots the viewer VM image (scripts/build-viewer-image) for real under QEMU
//! TCG and checks the disk and serial contract of docs/image.md: event lines,
//! the HTTP API through user-mode networking, the power button saving the
//! database to the output disk, restoring it, and failing fast on a bad
//! configuration.
//!
//! Needs qemu-system-x86_64, tar and sha256sum (scripts/apt-packages) and
//! apt access for the kernel package on the first build. Set
//! `VRUN_VIEWER_IMAGE=DIR` to use an already built image instead of running
//! the build script, or `VRUN_SKIP_IMAGE_BOOT=1` to skip these tests.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const APIKEY: &str = "5f0c2a3e9b8d4c7a1e6f0b2d3c4a5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
const URLUUID: &str = "proxy-6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
const GUEST_PORT: u16 = 8080;
const OUT_DISK_SIZE: u64 = 64 << 20;
/// Generous bounds: TCG on a loaded 2-core machine can be slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const EXIT_TIMEOUT: Duration = Duration::from_secs(180);

/// One VM at a time: TCG is CPU-bound and the machine is small.
static VM_LOCK: Mutex<()> = Mutex::new(());

fn skip() -> bool {
    if std::env::var_os("VRUN_SKIP_IMAGE_BOOT").is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!("VRUN_SKIP_IMAGE_BOOT is set: not booting the viewer image");
        return true;
    }
    false
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The image directory, built once per test binary.
fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VRUN_VIEWER_IMAGE") {
            return PathBuf::from(dir);
        }
        let out = target_dir().join("viewer-image-test");
        let script = repo_root().join("scripts/build-viewer-image");
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(&script)
            .arg("--out")
            .arg(&out)
            .current_dir(repo_root())
            .env_remove("VRUN_VIEWER_BIN")
            .status()
            .expect("running scripts/build-viewer-image");
        assert!(status.success(), "scripts/build-viewer-image failed: {status}");
        eprintln!("image built in {:.1?} at {}", started.elapsed(), out.display());
        out
    })
}

fn qemu_binary() -> &'static str {
    let q = "qemu-system-x86_64";
    let found = Command::new(q)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{q} not found: install qemu-system-x86 (scripts/apt-packages)");
    q
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run_json() -> String {
    format!(
        r#"{{"project":"p","viewer":"CodeDX","users":["alice"],"apikey":"{APIKEY}","urluuid":"{URLUUID}","port":{GUEST_PORT}}}"#
    )
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vrun-image-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes the configuration disk: a plain ustar archive from offset 0 with the
/// given members, padded with zeros to a whole MiB.
fn config_disk(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let src = dir.join("cfg-src");
    fs::create_dir_all(&src).unwrap();
    let mut names = Vec::new();
    for (name, bytes) in members {
        fs::write(src.join(name), bytes).unwrap();
        names.push(*name);
    }
    let disk = dir.join("cfg.img");
    let out = Command::new("tar")
        .arg("--format=ustar")
        .arg("-cf")
        .arg(&disk)
        .arg("-C")
        .arg(&src)
        .args(&names)
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    let len = fs::metadata(&disk).unwrap().len();
    let padded = (len / (1 << 20) + 1) * (1 << 20);
    File::options().write(true).open(&disk).unwrap().set_len(padded).unwrap();
    disk
}

/// A running VM; killed on drop so a failing test never leaves QEMU behind.
struct Vm {
    child: Child,
    serial: PathBuf,
    qmp: PathBuf,
    qemu_log: PathBuf,
    port: u16,
    started: Instant,
}

impl Vm {
    fn boot(dir: &Path, cfg: &Path, out: &Path) -> Vm {
        let img = image();
        let serial = dir.join("serial.log");
        let qmp = dir.join("qmp.sock");
        let qemu_log = dir.join("qemu.log");
        let port = free_port();
        let log = File::create(&qemu_log).unwrap();
        // What vruntask boots: the uncompressed kernel, entered directly (a Debian kernel has
        // the PVH entry; without it every View would boot the bzImage, ~7 s slower).
        let kernel = img.join("vmlinux");
        assert!(kernel.is_file(), "the image has no {}", kernel.display());
        let child = Command::new(qemu_binary())
            .args(["-machine", "q35,accel=tcg", "-m", "512", "-smp", "1"])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(img.join("initrd.img"))
            .args(["-append", "console=ttyS0 quiet loglevel=3 panic=1"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", cfg.display()))
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", out.display()))
            .arg("-netdev")
            .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting qemu-system-x86_64");
        Vm { child, serial, qmp, qemu_log, port, started: Instant::now() }
    }

    /// Serial lines, without the tty's carriage returns.
    fn lines(&self) -> Vec<String> {
        let bytes = fs::read(&self.serial).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().map(|l| l.trim_end_matches('\r').to_string()).collect()
    }

    fn tail(&self) -> String {
        let lines = self.lines();
        let from = lines.len().saturating_sub(40);
        let qemu = fs::read_to_string(&self.qemu_log).unwrap_or_default();
        format!("--- serial log tail ---\n{}\n--- qemu output ---\n{}", lines[from..].join("\n"), qemu.trim_end())
    }

    /// Waits for a serial line starting with `keyword` and returns it.
    fn wait_line(&mut self, keyword: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(keyword)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // One last look: the line may have landed just before exit.
                if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(keyword)) {
                    return l;
                }
                panic!("qemu exited ({status}) before a {keyword} line\n{}", self.tail());
            }
            if Instant::now() > deadline {
                panic!("no {keyword} line within {timeout:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_exit(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "qemu exited with {status}\n{}", self.tail());
                return;
            }
            if Instant::now() > deadline {
                panic!("qemu did not exit within {timeout:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Presses the ACPI power button through QMP (`system_powerdown`).
    fn powerdown(&self) {
        let stream = UnixStream::connect(&self.qmp)
            .unwrap_or_else(|e| panic!("connecting to QMP {}: {e}\n{}", self.qmp.display(), self.tail()));
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut read_reply = |what: &str| {
            // Skip asynchronous events until the command's reply.
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or_else(|e| panic!("QMP {what}: {e}"));
                assert!(!line.is_empty(), "QMP closed during {what}");
                if line.contains("\"return\"") || line.contains("\"QMP\"") {
                    return;
                }
                assert!(!line.contains("\"error\""), "QMP {what}: {line}");
            }
        };
        read_reply("greeting");
        writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").unwrap();
        read_reply("qmp_capabilities");
        writer.write_all(b"{\"execute\":\"system_powerdown\"}\n").unwrap();
        read_reply("system_powerdown");
    }

    /// One request to `/<urluuid>/api/projects` through the host forward;
    /// returns the status code and body.
    fn projects(&self, method: &str, body: Option<&str>) -> (u16, String) {
        let path = format!("/{URLUUID}/api/projects");
        let mut last_err = String::new();
        // The forward is live once VIEWERUP is printed; retry briefly anyway.
        for _ in 0..10 {
            match http(self.port, method, &path, APIKEY, body) {
                Ok(r) => return r,
                Err(e) => last_err = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{method} {path} via 127.0.0.1:{}: {last_err}\n{}", self.port, self.tail());
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn http(port: u16, method: &str, path: &str, apikey: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAPI-Key: {apikey}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Reads the output disk: the `VRUNDB1 <size> <sha256>` header block and the
/// archive behind it; checks the sha256 and returns (path of the archive, sha).
fn read_output_disk(out: &Path, dir: &Path) -> (PathBuf, String) {
    let mut disk = File::open(out).unwrap();
    let mut header = [0u8; 512];
    disk.read_exact(&mut header).unwrap();
    let end = header.iter().position(|&b| b == b'\n').expect("no newline in the output disk header");
    assert!(header[end + 1..].iter().all(|&b| b == 0), "header block not zero-padded");
    let line = std::str::from_utf8(&header[..end]).expect("header not ASCII");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "bad header {line:?}");
    assert_eq!(parts[0], "VRUNDB1", "bad header {line:?}");
    let size: u64 = parts[1].parse().expect("header size");
    let sha = parts[2].to_string();
    assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "bad sha {sha:?}");
    assert!(size > 0 && size + 512 <= OUT_DISK_SIZE, "bad size {size}");
    disk.seek(SeekFrom::Start(512)).unwrap();
    let mut bytes = vec![0u8; size as usize];
    disk.read_exact(&mut bytes).unwrap();
    let archive = dir.join("saved.archive");
    fs::write(&archive, &bytes).unwrap();
    assert_eq!(sha256_file(&archive), sha, "output disk archive does not match its header sha256");
    (archive, sha)
}

fn output_disk(dir: &Path) -> PathBuf {
    let out = dir.join("out.img");
    File::create(&out).unwrap().set_len(OUT_DISK_SIZE).unwrap();
    out
}

fn viewer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_viewer")
}

/// Boots with `cfg`, waits for VIEWERUP, checks the API (the project named
/// `expect_project` must be listed, if given; `create_project` is created),
/// presses the power button and returns the saved archive (verified against
/// header and serial).
fn serve_and_power_down(
    dir: &Path,
    cfg: &Path,
    db_line: &str,
    expect_project: Option<&str>,
    create_project: Option<&str>,
) -> PathBuf {
    let out = output_disk(dir);
    let mut vm = Vm::boot(dir, cfg, &out);
    vm.wait_line("RUNSHSTART", BOOT_TIMEOUT);
    let up = vm.wait_line("VIEWERUP ", BOOT_TIMEOUT);
    eprintln!("{up} after {:.1?}", vm.started.elapsed());
    let lines = vm.lines();
    assert!(lines.iter().any(|l| l == db_line), "expected a {db_line} line\n{}", vm.tail());
    assert!(!lines.iter().any(|l| l.starts_with("VRUNERROR")), "VRUNERROR while booting\n{}", vm.tail());
    let addr = up.trim_start_matches("VIEWERUP ");
    assert!(addr.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()), "bad VIEWERUP line {up:?}");

    let (status, body) = vm.projects("GET", None);
    assert_eq!(status, 200, "GET projects with the API key: {body}\n{}", vm.tail());
    assert!(body.contains("\"projects\""), "unexpected projects body {body:?}");
    if let Some(name) = expect_project {
        assert!(body.contains(&format!("\"{name}\"")), "project {name} missing after restore: {body}");
    }
    if let Some(name) = create_project {
        let (status, body) = vm.projects("PUT", Some(&format!(r#"{{"name":"{name}"}}"#)));
        assert_eq!(status, 201, "PUT projects: {body}\n{}", vm.tail());
    }

    vm.powerdown();
    vm.wait_exit(EXIT_TIMEOUT);
    eprintln!("powered off after {:.1?}", vm.started.elapsed());
    let lines = vm.lines();
    assert!(lines.iter().any(|l| l == "VIEWERDOWN"), "no VIEWERDOWN line\n{}", vm.tail());
    let saved = vm.wait_line("DBSAVED ", Duration::ZERO);
    let (archive, sha) = read_output_disk(&out, dir);
    assert_eq!(saved, format!("DBSAVED {sha}"), "serial and output disk disagree");

    let fresh = dir.join("imported");
    let imp = Command::new(viewer_bin()).args(["import", "--data"]).arg(&fresh).arg(&archive).output().unwrap();
    assert!(
        imp.status.success(),
        "viewer import of the saved archive failed: {}",
        String::from_utf8_lossy(&imp.stderr)
    );
    archive
}

/// Boots a configuration that must fail: a VRUNERROR line, then the VM powers
/// itself off. Returns the VRUNERROR line.
fn boot_expecting_error(dir: &Path, cfg: &Path) -> String {
    let out = output_disk(dir);
    let mut vm = Vm::boot(dir, cfg, &out);
    let line = vm.wait_line("VRUNERROR ", BOOT_TIMEOUT);
    vm.wait_exit(EXIT_TIMEOUT);
    assert!(!vm.lines().iter().any(|l| l.starts_with("VIEWERUP")), "viewer came up\n{}", vm.tail());
    let mut header = [0u8; 8];
    File::open(&out).unwrap().read_exact(&mut header).unwrap();
    assert_eq!(header, [0u8; 8], "output disk written after a VRUNERROR");
    eprintln!("{line} (powered off after {:.1?})", vm.started.elapsed());
    line
}

/// The start of every test: `None` when skipped, else the one-VM lock and a
/// scratch directory.
fn begin(tag: &str) -> Option<(MutexGuard<'static, ()>, Scratch)> {
    if skip() {
        return None;
    }
    let one = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    Some((one, Scratch::new(tag)))
}

/// Boots a configuration disk with `members` that must fail fast with a
/// VRUNERROR line containing `expect`.
fn fails_fast(tag: &str, members: &[(&str, &[u8])], expect: &str) {
    let Some((_one, scratch)) = begin(tag) else {
        return;
    };
    let cfg = config_disk(&scratch.0, members);
    let line = boot_expecting_error(&scratch.0, &cfg);
    assert!(line.contains(expect), "expected {expect:?} in {line:?}");
}

#[test]
fn fresh_boot_serves_saves_and_restores() {
    let Some((_one, scratch)) = begin("fresh") else {
        return;
    };
    let first = scratch.0.join("first");
    fs::create_dir_all(&first).unwrap();
    let cfg = config_disk(&first, &[("run.json", run_json().as_bytes())]);
    let archive = serve_and_power_down(&first, &cfg, "DBFRESH", None, Some("image-boot-test"));

    // Second boot restores what the first one saved.
    let second = scratch.0.join("second");
    fs::create_dir_all(&second).unwrap();
    let db = fs::read(&archive).unwrap();
    let cfg = config_disk(&second, &[("run.json", run_json().as_bytes()), ("viewerdb.archive", &db)]);
    serve_and_power_down(&second, &cfg, "DBRESTORED", Some("image-boot-test"), None);
}

#[test]
fn missing_run_json_fails_fast() {
    fails_fast("norunjson", &[("notes.txt", b"no run.json here\n")], "run.json");
}

#[test]
fn invalid_run_json_fails_fast() {
    let bad = r#"{"project":"p","viewer":"CodeDX","users":["alice"],"apikey":"short","urluuid":"x","port":8080}"#;
    fails_fast("badrunjson", &[("run.json", bad.as_bytes())], "apikey");
}

#[test]
fn bad_archive_fails_fast() {
    let run = run_json();
    fails_fast(
        "badarchive",
        &[("run.json", run.as_bytes()), ("viewerdb.archive", b"this is not an archive\n")],
        "import",
    );
}
