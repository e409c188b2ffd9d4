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
//! - a **request-line watch**: a request line past [`REQUEST_LINE_WATCH_MAX`] (just
//!   below hyper's URI limit, past which hyper answers a bare 414) is answered by the
//!   [`TooLong`] the assembly hands over, when it has an answer for that line (TouchTopUp
//!   answers its status 0 in the format asked), and the connection is closed.
//!
//! Once a request's head is in, its body and its handler are bounded by the request
//! timeout of `ops::edge`, not by these. Each connection is one task that runs hyper's
//! connection and a watchdog that sleeps until the deadline of the connection's current
//! phase: waiting for a head, busy with a request (no deadline, until its answer's body
//! has been sent: a streamed export may take longer than the keep-alive timeout), or
//! idle.

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
/// How long a request line may grow before [`TooLong`] is asked for an answer: below
/// hyper's URI limit (64 KiB), past which hyper answers a bare 414 itself.
pub const REQUEST_LINE_WATCH_MAX: usize = 60 * 1024;
/// How many first bytes of an over-long request line [`TooLong`] is shown.
const REQUEST_LINE_PREFIX_MAX: usize = 4096;

/// What answers a request line longer than [`REQUEST_LINE_WATCH_MAX`]: given its first
/// bytes, the whole HTTP response to send before the connection is closed, or `None`
/// to leave the answer to hyper. A dialect that answers in its own shape even then
/// (TouchTopUp's status 0) hands one over at assembly.
pub type TooLong = fn(&[u8]) -> Option<Vec<u8>>;

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

    /// Bytes arrived: on an idle connection they begin a head (`true` then).
    fn read_some(&self) -> bool {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_begun.swap(true, Ordering::AcqRel)
        {
            self.mark_now();
            return true;
        }
        false
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

/// A response body that keeps its connection busy until it has been sent or dropped.
struct BusyBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request line being read, while it is not complete.
#[derive(Default)]
struct Line {
    complete: bool,
    len: usize,
    prefix: Vec<u8>,
}

impl Line {
    /// Starts watching the next request line, keeping the prefix's buffer so that a
    /// keep-alive connection allocates it once.
    fn restart(&mut self) {
        self.complete = false;
        self.len = 0;
        self.prefix.clear();
    }
}

/// A TCP stream that tells its connection's [`Activity`] when bytes arrive, and
/// watches each request line for [`TooLong`].
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
    too_long: Option<TooLong>,
    line: Line,
}

impl Watched {
    /// Follows the request line through `read`; an answer when it grew too long.
    fn watch_line(&mut self, read: &[u8]) -> Option<Vec<u8>> {
        let too_long = self.too_long?;
        if self.line.complete {
            return None;
        }
        let end = read.iter().position(|b| *b == b'\n');
        let part = &read[..end.unwrap_or(read.len())];
        let room = REQUEST_LINE_PREFIX_MAX.saturating_sub(self.line.prefix.len());
        self.line
            .prefix
            .extend_from_slice(&part[..part.len().min(room)]);
        self.line.len += part.len();
        self.line.complete = end.is_some();
        if self.line.len > REQUEST_LINE_WATCH_MAX {
            self.line.complete = true;
            return too_long(&self.line.prefix);
        }
        None
    }
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
            if self.activity.read_some() {
                self.line.restart();
            }
            if let Some(answer) = self.watch_line(&buf.filled()[before..]) {
                // The answer is small and the socket's send buffer empty while a head
                // is read, so one write takes it; then the connection ends before
                // hyper answers on its own.
                let _ = self.tcp.try_write(&answer);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the request line is too long",
                )));
            }
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
    too_long: Option<TooLong>,
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
            connection(tcp, app, limits, too_long, stop).await;
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
async fn connection(
    tcp: TcpStream,
    app: Router,
    limits: Limits,
    too_long: Option<TooLong>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = Watched {
        tcp,
        activity: activity.clone(),
        too_long,
        line: Line::default(),
    };
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        watched.request_began();
        let busy = Busy(watched.clone());
        let mut app = app.clone();
        async move {
            let response = app.call(req).await;
            // The connection stays busy while the body is sent (a streamed export may
            // take longer than the keep-alive timeout); the body drops the guard.
            response.map(|r| r.map(|inner| BusyBody { inner, _busy: busy }))
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
