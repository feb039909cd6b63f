//! Every libvirt call of a run goes through [`Hv`]: off the async tasks (the `virt` crate
//! blocks) and under a deadline, so that a hypervisor that stops answering fails the run
//! with a reason naming the call ("libvirt did not answer domain start within 30 s")
//! instead of freezing the job until agent-monitor expires its lease.
//!
//! A call that ran out of time is not cancelled (libvirt offers no way): its thread stays
//! blocked until libvirtd answers. [`Hv::wait`] lets cleanup wait for such a call to finish
//! before it removes what the call may still have created.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::hypervisor::{HvError, Hypervisor};

/// Why a libvirt call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("libvirt did not answer {what} within {} s", .after.as_secs())]
    Timeout { what: &'static str, after: Duration },
    #[error("libvirt {what} failed: {}", .error.0)]
    Failed { what: &'static str, error: Arc<HvError> },
}

/// How a call did not finish in time.
pub enum Unfinished<T, R> {
    /// It failed, or ran out of time (then it is still pending).
    Error(CallError, Option<Pending<T>>),
    /// `interrupt` completed first with `R`; the call is still pending.
    Interrupted(R, Pending<T>),
}

/// A call still running after its deadline; await it with [`Hv::wait`].
pub struct Pending<T>(JoinHandle<Result<T, HvError>>);

/// The hypervisor with a deadline on each call.
#[derive(Clone)]
pub struct Hv {
    inner: Arc<dyn Hypervisor>,
    pub deadline: Duration,
}

impl Hv {
    pub fn new(inner: Arc<dyn Hypervisor>, deadline: Duration) -> Hv {
        Hv { inner, deadline }
    }

    /// Runs `f` on a blocking thread; an answer later than the deadline is a `Timeout`.
    pub async fn call<T, F>(&self, what: &'static str, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hypervisor) -> Result<T, HvError> + Send + 'static,
    {
        match self.start_call(what, f).await {
            Ok(v) => Ok(v),
            Err((e, _pending)) => Err(e),
        }
    }

    /// [`Hv::call`], handing back a call that timed out so the caller can wait for it.
    pub async fn start_call<T, F>(&self, what: &'static str, f: F) -> Result<T, (CallError, Option<Pending<T>>)>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hypervisor) -> Result<T, HvError> + Send + 'static,
    {
        match self.call_until(what, f, std::future::pending::<std::convert::Infallible>()).await {
            Ok(v) => Ok(v),
            Err(Unfinished::Error(e, pending)) => Err((e, pending)),
            Err(Unfinished::Interrupted(never, _)) => match never {},
        }
    }

    /// [`Hv::start_call`] that gives way to `interrupt` (a stop request): a SIGTERM while
    /// libvirt is slow ends the run at once, leaving the call pending for cleanup to wait on.
    pub async fn call_until<T, F, R>(
        &self,
        what: &'static str,
        f: F,
        interrupt: impl std::future::Future<Output = R>,
    ) -> Result<T, Unfinished<T, R>>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hypervisor) -> Result<T, HvError> + Send + 'static,
    {
        let mut handle = self.spawn(f);
        tokio::select! {
            joined = tokio::time::timeout(self.deadline, &mut handle) => match joined {
                Ok(joined) => flatten(what, joined).map_err(|e| Unfinished::Error(e, None)),
                Err(_) => Err(Unfinished::Error(CallError::Timeout { what, after: self.deadline }, Some(Pending(handle)))),
            },
            why = interrupt => Err(Unfinished::Interrupted(why, Pending(handle))),
        }
    }

    /// Starts `f` on a blocking thread without waiting: for the watch loop's state polls,
    /// which must not pile up threads behind a libvirtd that stopped answering.
    pub fn spawn<T, F>(&self, f: F) -> JoinHandle<Result<T, HvError>>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hypervisor) -> Result<T, HvError> + Send + 'static,
    {
        let hv = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(hv.as_ref()))
    }

    /// Removes domain `name` (destroyed first if it runs): a call with the usual deadline,
    /// then, if libvirt is slow, up to `patience` more for the same call to finish.
    pub async fn remove_domain(&self, name: &str, patience: Duration) -> Result<(), CallError> {
        let n = name.to_string();
        match self.start_call("domain undefine", move |h| h.undefine(&n)).await {
            Ok(()) => Ok(()),
            Err((e, None)) => Err(e),
            Err((e, Some(pending))) => {
                tracing::warn!(error = %e, domain = name, "still waiting for libvirt to remove the domain");
                self.wait("domain undefine", pending, patience).await
            }
        }
    }

    /// Waits up to `patience` for a call that outlived its deadline.
    pub async fn wait<T>(&self, what: &'static str, pending: Pending<T>, patience: Duration) -> Result<T, CallError> {
        match tokio::time::timeout(patience, pending.0).await {
            Ok(joined) => flatten(what, joined),
            Err(_) => Err(CallError::Timeout { what, after: patience }),
        }
    }
}

fn flatten<T>(what: &'static str, joined: Result<Result<T, HvError>, tokio::task::JoinError>) -> Result<T, CallError> {
    match joined {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::Failed { what, error: Arc::new(e) }),
        Err(e) => Err(CallError::Failed { what, error: Arc::new(HvError(format!("the call panicked: {e}"))) }),
    }
}
