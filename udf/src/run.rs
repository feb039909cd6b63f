//! Runs launchviewer from inside the database server: an argument vector (no shell), a
//! clean environment, no inherited descriptors, stdout read to end of file within the
//! configured time, and the child always reaped.
//!
//! The server's own descriptors (its listening socket, its tables) must not reach
//! launchviewer, let alone the detached process it may leave behind: that one would keep
//! them open after the server stops. So every descriptor above stderr is closed in the
//! child before `exec`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Most bytes of output returned (launchviewer prints one line).
pub const MAX_OUTPUT: usize = 4096;

/// Runs the configured launchviewer with `argv` (from [`crate::argv`]) and its own options;
/// returns its output, trimmed, or why there is none.
pub fn launchviewer(cfg: &Config, argv: &[String]) -> Result<String, String> {
    let mut cmd = Command::new(&cfg.launchviewer);
    cmd.args(argv)
        .arg(format!("--agent-monitor={}", cfg.agent_monitor))
        .arg(format!("--secret-file={}", cfg.secret_file.display()))
        .arg(format!("--db-config={}", cfg.db_config.display()))
        .args(cfg.background_wait_secs.map(|s| format!("--background-wait={s}")))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so that a timeout kills launchviewer and nothing of the server's.
        .process_group(0);
    // SAFETY: only async-signal-safe calls (close_range, fcntl, sigprocmask, signal) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            vrun_proto::exec::clean_child();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", cfg.launchviewer.display()))?;
    let deadline = Instant::now() + cfg.timeout();
    let out = read_until_eof(&mut child, deadline);
    // After a timeout, no grace: the caller has waited long enough.
    let status = reap(
        &mut child,
        if out.is_ok() { deadline.max(Instant::now() + Duration::from_secs(2)) } else { Instant::now() },
    );
    let out = out?;
    let text = String::from_utf8_lossy(&out).trim().to_owned();
    if text.is_empty() {
        return Err(format!("launchviewer printed nothing ({status})"));
    }
    Ok(text)
}

/// stdout up to end of file (or [`MAX_OUTPUT`] bytes), waiting at most until `deadline`.
fn read_until_eof(child: &mut Child, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut pipe = child.stdout.take().ok_or("no stdout pipe")?;
    let fd = pipe.as_raw_fd();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "launchviewer gave no complete answer within the UDF's timeout; got {:?}",
                lossy(&out)
            ));
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("cannot wait for launchviewer's output: {e}"));
        }
        if n == 0 {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(k) => {
                out.extend_from_slice(&buf[..k]);
                if out.len() >= MAX_OUTPUT {
                    out.truncate(MAX_OUTPUT);
                    return Ok(out);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read launchviewer's output: {e}")),
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits for the child until `grace` (it exits right after its line), then kills its
/// process group; always reaps it. Returns how it ended, for messages.
fn reap(child: &mut Child, grace: Instant) -> String {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.to_string(),
            Ok(None) if Instant::now() < grace => std::thread::sleep(Duration::from_millis(5)),
            _ => break,
        }
    }
    // SAFETY: kill(2) of the process group this function's child leads.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    match child.wait() {
        Ok(st) => format!("killed after the timeout, {st}"),
        Err(e) => format!("killed after the timeout ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(program: &str, timeout_secs: u64) -> Config {
        Config {
            launchviewer: program.into(),
            agent_monitor: "http://127.0.0.1:9/RPC2".into(),
            secret_file: "/nonexistent".into(),
            db_config: "/nonexistent".into(),
            timeout_secs,
            background_wait_secs: None,
        }
    }

    #[test]
    fn passes_an_argument_vector_without_a_shell() {
        // /bin/echo prints its arguments: a value with shell syntax arrives as it was.
        let out = launchviewer(&cfg("/bin/echo", 5), &["--package=a'b; $(touch /tmp/x)".into()]).unwrap();
        assert!(out.starts_with("--package=a'b; $(touch /tmp/x) --agent-monitor=http://127.0.0.1:9/RPC2"), "{out}");
    }

    #[test]
    fn a_silent_or_missing_program_is_an_error() {
        assert!(launchviewer(&cfg("/bin/true", 5), &[]).unwrap_err().contains("printed nothing"));
        assert!(launchviewer(&cfg("/nonexistent/launchviewer", 5), &[]).unwrap_err().contains("cannot run"));
    }

    #[test]
    fn a_hanging_program_is_killed_at_the_timeout() {
        use std::os::unix::fs::PermissionsExt;
        let script = std::env::temp_dir().join(format!("vrun-udf-hang-{}", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\necho -n partial\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t0 = Instant::now();
        let e = launchviewer(&cfg(script.to_str().unwrap(), 1), &[]).unwrap_err();
        std::fs::remove_file(&script).unwrap();
        assert!(e.contains("timeout") && e.contains("partial"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    }
}
