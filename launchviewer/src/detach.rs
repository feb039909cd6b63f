//! The background half of a SWAMP View: this same program, started again with
//! [`FINISH_FLAG`], in a session of its own, with no stdio of its parent's.
//!
//! The stored procedure reads launchviewer's stdout until end of file: a background process
//! that kept that pipe (or any other descriptor of the database server's) open would hang
//! the SQL call, or keep the server's files open after it stopped. So the child gets
//! /dev/null for stdin, stdout and stderr, every other descriptor is closed on `exec`, and
//! `setsid` takes it out of the caller's process group (a timeout that kills the caller's
//! group does not kill the View). Its progress and outcome go to the `viewer_instance` row.
//! It starts with SIGTERM blocked and unblocks it once its handler can record the stop
//! ([`unblock_sigterm`]): a stop at any moment ends as a recorded "Unable to launch viewer".

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
            // Pending until the child can record it (see `unblock_sigterm`).
            sigterm_mask(libc::SIG_BLOCK);
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}

/// Called by the finisher once its SIGTERM handler is in place: the parent started it with
/// SIGTERM blocked, so a stop sent while it was starting (before it could record one) was
/// held, not the default death that leaves the row at "Launching viewer".
pub fn unblock_sigterm() {
    sigterm_mask(libc::SIG_UNBLOCK);
}

/// Blocks or unblocks SIGTERM (async-signal-safe; on Linux, for the calling thread).
fn sigterm_mask(how: libc::c_int) {
    // SAFETY: sigemptyset, sigaddset and sigprocmask on a local set.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        libc::sigprocmask(how, set.as_ptr(), std::ptr::null_mut());
    }
}
