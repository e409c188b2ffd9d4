//! Serving HTTP/1.1 connections within limits.
//!
//! axum's `serve` bounds neither how long a client may take to send a request head nor
//! how many connections are open, so a few thousand clients that connect and say
//! nothing (or half a head, a byte at a time) hold memory and file descriptors for as
//! long as they like. This accept loop gives every connection:
//!
//! - a **header-read timeout** ([`Limits::header_read_timeout`]): a request head must be
//!   complete within it, counted from the accept for the first request and from the
//!   first byte of the head for later ones;
//! - a **keep-alive timeout** ([`Limits::keep_alive_timeout`]): a connection with no
//!   request in flight and no byte of a next one is closed that long after its last
//!   answer. Its default is longer than the 60 s idle timeout of common load balancers,
//!   so that the balancer, not prepaid, closes idle connections and never sends a request
//!   on a connection prepaid is closing;
//! - a **cap** ([`Limits::connections_max`]): a connection accepted while that many are
//!   open is closed at once, unanswered, and counted in
//!   `prepaid_http_connections_refused_total`.
//!
//! Once a request's head is in, its body and its handler are bounded by the request
//! timeout of `ops::edge`, not by these. Each connection is one task that runs hyper's
//! connection and a watchdog that sleeps until the deadline of the connection's current
//! phase: waiting for a head, busy with a request (no deadline), or idle.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::Service as _;

/// How long a client may take to send a request head, by default.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// How long an idle keep-alive connection stays open, by default.
pub const KEEP_ALIVE_TIMEOUT_MS: u64 = 75_000;
/// How many connections are served at once, by default.
pub const CONNECTIONS_DEFAULT: usize = 4096;
/// The longest header-read or keep-alive timeout that may be configured.
pub const HTTP_TIMEOUT_MS_MAX: u64 = 60 * 60 * 1000;
/// The most connections that may be configured.
pub const HTTP_CONNECTIONS_MAX: usize = 1_000_000;
/// How long the accept loop pauses after an error that is not one connection's (out of
/// file descriptors, say), so that it does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// The limits of every connection (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub connections_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
            keep_alive_timeout: Duration::from_millis(KEEP_ALIVE_TIMEOUT_MS),
            connections_max: CONNECTIONS_DEFAULT,
        }
    }
}

/// What the watchdog of one connection knows of it.
struct Activity {
    epoch: Instant,
    /// Requests whose response is not ready yet.
    in_flight: AtomicUsize,
    /// Whether a request head has begun since the connection was last idle (a fresh
    /// connection counts as begun, so a silent one meets the header-read timeout).
    head_begun: AtomicBool,
    /// When the current phase began, in milliseconds since `epoch`.
    since_ms: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_begun: AtomicBool::new(true),
            since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn mark_now(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since_ms.store(ms, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection they begin a head.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_begun.swap(true, Ordering::AcqRel)
        {
            self.mark_now();
        }
    }

    fn request_began(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.head_begun.store(false, Ordering::Release);
            self.mark_now();
        }
    }

    /// When the connection is to be closed if nothing happens; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let limit = if self.head_begun.load(Ordering::Acquire) {
            limits.header_read_timeout
        } else {
            limits.keep_alive_timeout
        };
        let since = Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + limit)
    }

    /// Completes when the deadline of the connection's phase has passed.
    async fn expired(&self, limits: &Limits) {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// Ends a request's busy phase when its response is ready, or when it is dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A TCP stream that tells its connection's [`Activity`] when bytes arrive.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, lets every connection finish the request it is answering, and returns
/// once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("prepaid_http_connections_refused_total").increment(1);
            tracing::debug!(
                connections_max = limits.connections_max,
                "refused a connection: too many open"
            );
            drop(tcp);
            continue;
        };
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(tcp, app, limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot is back once every connection has closed.
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Serves one connection until the client closes it, its phase's deadline passes, or
/// shutdown has let its last request finish.
async fn connection(tcp: TcpStream, app: Router, limits: Limits, mut stop: watch::Receiver<bool>) {
    let activity = Arc::new(Activity::new());
    let io = Watched {
        tcp,
        activity: activity.clone(),
    };
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        watched.request_began();
        let busy = Busy(watched.clone());
        let mut app = app.clone();
        async move {
            let response = app.call(req).await;
            drop(busy);
            response
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
                return;
            }
            () = activity.expired(&limits) => {
                tracing::debug!("closed a connection that sent no request in time");
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            connections_max: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let limits = limits();
        let a = Activity::new();
        // A fresh connection waits for its first head.
        assert_eq!(
            a.deadline(&limits),
            Some(a.epoch + limits.header_read_timeout)
        );
        a.request_began();
        assert_eq!(a.deadline(&limits), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        a.request_ended();
        let idle = a.deadline(&limits).unwrap();
        assert_eq!(idle, Instant::now() + limits.keep_alive_timeout);
        tokio::time::advance(Duration::from_secs(5)).await;
        // The first byte of the next head starts its header-read timeout.
        a.read_some();
        assert_eq!(
            a.deadline(&limits),
            Some(Instant::now() + limits.header_read_timeout)
        );
        // Further bytes of the same head do not extend it.
        let head = a.deadline(&limits);
        tokio::time::advance(Duration::from_secs(1)).await;
        a.read_some();
        assert_eq!(a.deadline(&limits), head);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_after_the_header_timeout() {
        let limits = limits();
        let a = Activity::new();
        let started = Instant::now();
        a.expired(&limits).await;
        assert_eq!(Instant::now() - started, limits.header_read_timeout);
    }
}
