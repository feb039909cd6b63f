//! What a child process needs between `fork` and `exec` (feature `exec`): a clean signal
//! state and no inherited descriptors. launchviewer detaches its background finisher with
//! it, and the MariaDB UDF runs launchviewer with it: a database server blocks SIGTERM in
//! its threads and holds sockets and table files open, none of which may reach a child.
//! Every call here is async-signal-safe.

/// Both: descriptors from 3 up close-on-exec, signals unblocked and at their defaults.
/// Meant for `CommandExt::pre_exec`.
pub fn clean_child() {
    cloexec_from(3);
    default_signals();
}

/// Unblocks every signal and gives the catchable ones their default action: a signal mask
/// and ignored signals survive `exec`, and a database server blocks SIGTERM in its threads
/// (it waits for signals in one of its own), which would leave the launcher deaf to it.
pub fn default_signals() {
    // SAFETY: sigemptyset, sigprocmask and signal are async-signal-safe; the set is local.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Marks every descriptor from `low` up close-on-exec (not closed: the standard library
/// reports a failed `exec` through one of them).
pub fn cloexec_from(low: i32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscalls on descriptors of this (child) process.
    unsafe {
        if libc::syscall(libc::SYS_close_range, low as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
            for fd in low..65536 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}
