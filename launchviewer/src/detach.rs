//! The background half of a SWAMP View: this same program, started again with
//! [`FINISH_FLAG`], in a session of its own, with no stdio of its parent's.
//!
//! The stored procedure reads launchviewer's stdout until end of file: a background process
//! that kept that pipe (or any other descriptor of the database server's) open would hang
//! the SQL call, or keep the server's files open after it stopped. So the child gets
//! /dev/null for stdin, stdout and stderr, every other descriptor is closed on `exec`, and
//! `setsid` takes it out of the caller's process group (a timeout that kills the caller's
//! group does not kill the View). Its progress and outcome go to the `viewer_instance` row.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Added to the original arguments: "finish this View, recording it in the row".
pub const FINISH_FLAG: &str = "--finish-detached";

/// Starts the background finisher with this process's own arguments; returns its PID.
/// The parent does not wait for it: it is reparented when the parent exits.
pub fn spawn_finisher() -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .arg(FINISH_FLAG)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (setsid, close_range, fcntl, sigprocmask, signal)
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            vrun_proto::exec::clean_child();
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}
