//! The body of an upload, held to the size limit but read to its end.
//!
//! Refusing an oversized upload the moment the limit is crossed (what `DefaultBodyLimit`
//! does) sends the 413 while the client is still writing; the server then closes the
//! connection, and the client often sees a broken pipe or a reset instead of the answer
//! (CI caught both). So past the limit this body keeps reading and throwing away what
//! arrives, up to [`DRAIN_CAP`] more bytes, and only then fails: the client has finished
//! sending, reads the 413 and its message, and can even reuse the connection. Beyond the
//! cap it fails at once, so a client cannot make the viewer read without end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::Frame;

/// How much past the limit is read and discarded before giving up on a polite answer.
pub const DRAIN_CAP: u64 = 64 << 20;

pub struct LimitedToEnd {
    inner: Body,
    seen: u64,
    limit: u64,
    over: Arc<AtomicBool>,
}

impl LimitedToEnd {
    /// `over` is set once the body has gone past `limit` (the upload is then refused).
    pub fn new(inner: Body, limit: u64, over: Arc<AtomicBool>) -> LimitedToEnd {
        LimitedToEnd { inner, seen: 0, limit, over }
    }

    fn too_large(&self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.over.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(format!("upload is larger than the limit of {} bytes", self.limit)))))
    }
}

impl HttpBody for LimitedToEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        loop {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    self.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if self.seen <= self.limit {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    self.over.store(true, Ordering::Relaxed);
                    if self.seen > self.limit + DRAIN_CAP {
                        return self.too_large();
                    }
                    // Past the limit: discard and keep reading to the end.
                }
                None if self.seen > self.limit => return self.too_large(),
                other => return Poll::Ready(other),
            }
        }
    }
}
