//! The connection layer under the XML-RPC router: accepting, deadlines, caps, shutdown.
//!
//! `axum::serve` ran without a timer (so hyper's header timeout was off) and without caps:
//! three idle sockets stayed open forever, and 300 of them on a daemon with 256 descriptors
//! made every heartbeat time out until healthy jobs lost their leases (issue 13). Here:
//!
//! - **Deadlines.** hyper's header timer runs from the moment a connection is waiting for a
//!   request, so it bounds a bare connect, slow headers and an idle keep-alive connection
//!   alike (`header_timeout`). The body has its own deadline in [`crate::rpc`].
//! - **Caps.** At most `max_connections` in total and `max_per_peer` from one address. When
//!   a cap is reached, the oldest *idle* connection (no request in progress: it has not sent
//!   its headers, or is between requests) is closed to make room; only when every
//!   connection is busy is the new one refused. Holding a connection busy needs
//!   credentials (the call is refused before its body is read otherwise), so a flood of
//!   unauthenticated sockets can only push out other idle sockets: a job's heartbeat or a
//!   launcher's call, which sends its request at once, gets through.
//! - **Accept errors** (`EMFILE`, `ENFILE`, `ENOBUFS`) back off from 10 ms to 1 s instead of
//!   spinning, and are logged at most once a second.
//! - **TLS** (the front door's option): the handshake runs under the header deadline; a
//!   connection in its handshake is idle for the caps.
//! - **Threads.** The XML-RPC listener's connections are served on one single-threaded
//!   runtime per core ([`threads`]); the front door's stay on the daemon's runtime.
//! - **Shutdown.** New connections stop at once; idle ones close; requests in progress get
//!   `shutdown_grace` to finish, then their connections are dropped (a half-sent request
//!   held shutdown for 20 s and more). A handler dropped there is never cut in the middle of
//!   a store write: the writer thread finishes (or rolls back) the batch it holds on its own.

mod threads;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use threads::ConnectionThreads;

/// How much of a request body is read, and for how long.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest `storeviewer` body (a viewer database).
    pub max_body: usize,
    /// Largest body of every other call: four 63 MiB calls of nothing took 860 MiB (issue 13).
    pub max_call: usize,
    /// Bodies larger than `max_call` read at once; more wait (within the body deadline).
    pub max_large: usize,
    /// Deadline for the whole body, from the end of the headers.
    pub timeout: Duration,
}

/// The connection layer's limits (flags in [`crate::config`]).
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub shutdown_grace: Duration,
}

struct Conn {
    peer: IpAddr,
    /// Whether it is busy and since when it is idle; the connection's own task sets it
    /// around each request without the table's lock.
    state: Arc<ConnState>,
    close: Arc<Notify>,
}

/// A connection's busy flag and idle clock, as atomics: two requests in flight on two
/// workers took the table's one mutex four times per call (perf: lock contention on the
/// status path, docs/performance.md).
struct ConnState {
    /// A request is in progress: the connection must not be closed to make room.
    busy: AtomicBool,
    /// When it last became idle (ns since the registry's epoch); the oldest idle one is
    /// closed first.
    idle_since: AtomicU64,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Conn>,
    per_peer: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// Every open connection, for the caps and for shutdown.
struct Registry {
    limits: EdgeLimits,
    /// The zero of every connection's `idle_since`.
    epoch: Instant,
    table: Mutex<Table>,
    /// Woken when a connection ends (shutdown waits for the table to empty).
    ended: Notify,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Conn> {
        let c = self.conns.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&c.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&c.peer);
            }
        }
        Some(c)
    }

    /// Closes the oldest idle connection (of `peer` only, if given); false if none is idle.
    fn evict_idle(&mut self, peer: Option<IpAddr>) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, c)| !c.state.busy.load(Relaxed) && peer.is_none_or(|p| p == c.peer))
            .min_by_key(|(_, c)| c.state.idle_since.load(Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.remove(id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, making room under the caps if an idle one can go.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let mut t = self.lock();
        if t.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.max_per_peer && !t.evict_idle(Some(peer)) {
            return None;
        }
        if t.conns.len() >= self.limits.max_connections && !t.evict_idle(None) {
            return None;
        }
        let id = t.next_id;
        t.next_id += 1;
        let close = Arc::new(Notify::new());
        let state = Arc::new(ConnState { busy: AtomicBool::new(false), idle_since: AtomicU64::new(self.now()) });
        t.conns.insert(id, Conn { peer, state: Arc::clone(&state), close: Arc::clone(&close) });
        *t.per_peer.entry(peer).or_insert(0) += 1;
        Some(Slot { id, registry: Arc::clone(self), close, state })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Asks every connection to finish what it is doing and close (at shutdown).
    fn close_all(&self) {
        self.shutting_down.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in self.lock().conns.values() {
            c.close.notify_one();
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().conns.is_empty()
    }
}

/// One connection's place in the registry; leaving it (on drop) frees the place.
struct Slot {
    id: u64,
    registry: Arc<Registry>,
    close: Arc<Notify>,
    state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(self.id);
        self.registry.ended.notify_waiters();
    }
}

/// Marks the connection busy while a request is in progress (also when the handler is
/// dropped half-way).
struct Busy(Arc<Slot>);

impl Busy {
    fn new(slot: &Arc<Slot>) -> Busy {
        slot.set_busy(true);
        Busy(Arc::clone(slot))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set_busy(false);
    }
}

impl Slot {
    fn set_busy(&self, busy: bool) {
        self.state.idle_since.store(self.registry.now(), Relaxed);
        self.state.busy.store(busy, Relaxed);
    }
}

/// Logs a repeated warning at most once a second.
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let due = self.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            self.0 = Some(Instant::now());
        }
        due
    }
}

tokio::task_local! {
    /// The peer of the connection whose task is running (set for every connection).
    static PEER: SocketAddr;
}

/// The address of the caller whose request is being handled, for log lines; `None` outside
/// a connection served here (unit tests calling a router directly).
pub fn peer() -> Option<SocketAddr> {
    PEER.try_with(|p| *p).ok()
}

/// Serves `app` on `listener` until `shutdown` completes, then for at most
/// `limits.shutdown_grace` while requests in progress finish. Handlers learn the peer from
/// [`peer`]; no `ConnectInfo` extension is inserted (an extension map allocated per request).
/// Connections are served on [`threads`] of their own.
pub async fn serve(listener: TcpListener, app: Router, limits: EdgeLimits, shutdown: impl Future<Output = ()>) {
    let threads = ConnectionThreads::start()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot start connection threads; serving on the daemon's runtime"))
        .ok();
    serve_with(listener, app, limits, None, false, threads, shutdown).await
}

/// [`serve`], speaking TLS on every connection when `tls` is given (the front door's
/// option). The handshake is under the header deadline and counts as idle for the caps.
/// Each request carries `ConnectInfo<SocketAddr>` (the front door's handlers extract it).
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, app, limits, tls, true, None, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connect_info: bool,
    threads: Option<ConnectionThreads>,
    shutdown: impl Future<Output = ()>,
) {
    let grace = limits.shutdown_grace;
    let registry = Arc::new(Registry {
        limits,
        epoch: Instant::now(),
        table: Mutex::default(),
        ended: Notify::new(),
        shutting_down: Default::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let (mut refused_log, mut accept_log) = (Throttle(None), Throttle(None));
    let mut backoff = Duration::from_millis(10);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        // Finished connections' results are not needed; keep the set small.
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if accept_log.ready() {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept error; backing off");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let Some(slot) = registry.admit(peer.ip()) else {
            if refused_log.ready() {
                tracing::warn!(%peer, "refused a connection: every connection allowed is busy");
            }
            continue;
        };
        let app = app.clone();
        match &threads {
            // Moved to the thread's own reactor, so that its readiness wakes that thread.
            Some(threads) => match stream.into_std() {
                Ok(stream) => {
                    let serve = async move {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => accept_one(stream, peer, app, slot, None, connect_info).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "cannot register a connection"),
                        }
                    };
                    tasks.spawn_on(PEER.scope(peer, serve), threads.next());
                }
                Err(e) => tracing::debug!(%peer, error = %e, "cannot hand over a connection"),
            },
            None => {
                tasks.spawn(PEER.scope(peer, accept_one(stream, peer, app, slot, tls.clone(), connect_info)));
            }
        }
    }
    drop(listener);
    registry.close_all();
    let end = tokio::time::Instant::now() + grace;
    loop {
        let ended = registry.ended.notified();
        if registry.is_empty() || tokio::time::timeout_at(end, ended).await.is_err() {
            break;
        }
    }
    let left = tasks.len();
    tasks.abort_all();
    drop(threads);
    if !registry.is_empty() {
        tracing::warn!(
            connections = left,
            grace_secs = grace.as_secs(),
            "requests still in progress at the shutdown deadline were dropped"
        );
    }
}

async fn accept_one(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    slot: Slot,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connect_info: bool,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return connection(stream, peer, app, slot, connect_info).await;
    };
    let deadline = slot.registry.limits.header_timeout;
    let close = Arc::clone(&slot.close);
    let handshake = tokio::select! {
        h = tokio::time::timeout(deadline, acceptor.accept(stream)) => h,
        // Closed to make room or at shutdown: a handshake is not a request in progress.
        _ = close.notified() => return,
    };
    match handshake {
        Ok(Ok(s)) => connection(s, peer, app, slot, connect_info).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake did not finish within the header deadline"),
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, app: Router, slot: Slot, connect_info: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let slot = Arc::new(slot);
    let close = Arc::clone(&slot.close);
    let conn_slot = Arc::clone(&slot);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if connect_info {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let busy = Busy::new(&conn_slot);
        let call = tower_service::Service::call(&mut app.clone(), req);
        async move {
            let answer = call.await;
            drop(busy);
            answer
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(slot.registry.limits.header_timeout)
        // Headers are small; this also bounds what a connection may buffer (hyper's default
        // is about 400 KB, times every connection).
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = close.notified() => {}
    }
    // Closed to make room (it was idle) or at shutdown: an answer being written, or at
    // shutdown a request in progress, is finished first; hyper closes an idle one at once.
    conn.as_mut().graceful_shutdown();
    let registry = &slot.registry;
    let linger = if registry.shutting_down.load(std::sync::atomic::Ordering::Relaxed) {
        registry.limits.shutdown_grace
    } else {
        Duration::from_secs(1)
    };
    let _ = tokio::time::timeout(linger, conn).await;
}
