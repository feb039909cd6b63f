//! The connection threads of the XML-RPC listener: one single-threaded tokio runtime per
//! core, each serving the connections handed to it from start to end.
//!
//! On the daemon's work-stealing runtime every request woke a second worker to look for
//! work, and a connection's readiness, its request and its answer moved between threads:
//! the status path spent 1.8× the CPU of an axum constant responder on the same runtime and
//! reached half of nginx's req/s (docs/performance.md). Here a connection's whole life is on
//! one thread with its own reactor, like nginx's workers. What must outlive a request
//! (effects, state-changing calls) is spawned on the daemon's runtime instead
//! ([`crate::daemon::Daemon::rt`]), so stopping these threads loses nothing.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

struct Thread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The threads; each connection goes to the next in turn. Dropping this stops them: what
/// still runs on them (connections past the shutdown deadline) is dropped.
pub(super) struct ConnectionThreads {
    threads: Vec<Thread>,
    next: AtomicUsize,
}

impl ConnectionThreads {
    /// One per core the process may use.
    pub(super) fn start() -> std::io::Result<ConnectionThreads> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rt = Builder::new_current_thread().enable_all().build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new().name(format!("rpc-conn-{i}")).spawn(move || {
                // Drives the connections spawned onto it until told to stop.
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })?;
            threads.push(Thread { handle, stop: Some(stop), thread: Some(thread) });
        }
        Ok(ConnectionThreads { threads, next: AtomicUsize::new(0) })
    }

    /// The runtime of the thread that takes the next connection.
    pub(super) fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Relaxed) % self.threads.len();
        &self.threads[i].handle
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        for t in &mut self.threads {
            if let Some(stop) = t.stop.take() {
                let _ = stop.send(());
            }
        }
        for t in &mut self.threads {
            if let Some(thread) = t.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
