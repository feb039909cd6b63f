//! KVM or TCG. `/dev/kvm` existing is not enough: on nested setups Linux guests hang under it
//! without a word (a real-mode boot sector still runs, so a toy probe lies). So the first run
//! on a host boots the platform's own kernel under KVM with no root filesystem: a working KVM
//! reaches the kernel's "VFS: Unable to mount root" panic within a second or two; if it is
//! not seen within a few seconds, TCG is used. The verdict is cached per host boot (keyed by
//! the boot id) so later jobs pay nothing. Without a kernel to try, TCG is the safe answer.
//!
//! The probe takes up to 8 s, so it belongs to the host's start, not to a user's click:
//! `vruntask probe-accel` runs it (the scripts run it when they set libvirt up, and
//! agent-monitor starts one in the background at its own start). A job that finds no
//! verdict probes itself, after its first heartbeat and off its async tasks; probes are
//! serialised by a lock beside the cache, so a job arriving during a probe waits for that
//! verdict instead of starting a second QEMU.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// libvirt's domain type: `qemu` means TCG.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

/// What the operator chose (`--accel` / `VRUN_ACCEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// Probe once per host boot.
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator for `choice`: fixed, or [`detect`]ed with the platform's `kernel`.
pub fn choose(choice: Choice, cache_dir: &Path, kernel: Option<&Path>) -> Accel {
    match choice {
        Choice::Kvm => Accel::Kvm,
        Choice::Tcg => Accel::Tcg,
        Choice::Auto => detect(cache_dir, kernel.filter(|k| k.is_file())),
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string()
}

/// What a booting kernel prints once it got far enough to prove the accelerator works.
const MARKER: &[u8] = b"Kernel panic";
/// How long a working KVM may take to get there (it takes about a second).
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// Picks the accelerator, probing once per host boot with `kernel`. `cache_dir` holds the
/// verdict.
pub fn detect(cache_dir: &Path, kernel: Option<&Path>) -> Accel {
    let cache = cache_dir.join("accel");
    let id = boot_id();
    if let Some(a) = cached(&cache, &id) {
        return a;
    }
    let Some(kernel) = kernel else { return Accel::Tcg };
    let _ = std::fs::create_dir_all(cache_dir);
    // One probe at a time per host: whoever waited here finds the verdict already cached.
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(cache_dir.join("accel.lock"));
    let mut lock = lock.ok().map(fd_lock::RwLock::new);
    let _held = lock.as_mut().and_then(|l| l.write().ok());
    if let Some(a) = cached(&cache, &id) {
        return a;
    }
    let accel = probe(kernel);
    let tmp = cache.with_extension("tmp");
    let written = std::fs::write(&tmp, format!("{id} {}\n", if accel == Accel::Kvm { "kvm" } else { "tcg" }))
        .and_then(|_| std::fs::rename(&tmp, &cache));
    if let Err(e) = written {
        tracing::warn!(error = %e, cache = %cache.display(), "cannot cache the accelerator verdict");
    }
    tracing::info!(?accel, "accelerator probed");
    accel
}

/// The verdict cached for boot `id`, if any.
fn cached(cache: &Path, id: &str) -> Option<Accel> {
    let text = std::fs::read_to_string(cache).ok()?;
    let (cached_id, verdict) = text.trim().split_once(' ')?;
    (cached_id == id).then_some(if verdict == "kvm" { Accel::Kvm } else { Accel::Tcg })
}

fn probe(kernel: &Path) -> Accel {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Accel::Tcg;
    }
    if probe_kernel(kernel).unwrap_or(false) {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

fn probe_kernel(kernel: &Path) -> std::io::Result<bool> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-M", "q35", "-m", "128", "-display", "none", "-monitor", "none", "-nodefaults"])
        .args(["-serial", "stdio", "-no-reboot", "-append", "console=ttyS0 panic=-1", "-kernel"])
        .arg(kernel)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(MARKER.len()).any(|w| w == MARKER) {
                let _ = tx.send(());
                break;
            }
        }
    });
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let ok = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    Ok(ok)
}
